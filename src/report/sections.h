// One function per section of the report, each reading results.json only.
#pragma once

#include "report/document.h"
#include "report/stages.h"

namespace flow2::report {

Section summary_section(const Json& results);
Section best_section(const Json& results);
Section performance_section(const Json& results);
std::vector<Section> model_sections(const Json& results);
Section finetune_section(const Json& results);
Section dataset_section(const Json& results);
Section backend_section(const Json& results);
Section scaling_section(const Json& results);
Section recommendations_section(const Json& results);
Section system_section(const Json& results);
Section stages_section(const Json& results);

Document build_document(const Json& results);

// "ok", "failed: <error>", "not measured: <reason>", ... for a stage's JSON.
std::string status_text(const Json& stage);

}  // namespace flow2::report
