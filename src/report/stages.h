// The stages of flow2 report. Each returns its part of results.json and records its outcome
// in "status": "ok", "failed" (+ "error"), "not measured" (+ "reason") or "skipped".
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "flow2/report.h"

namespace flow2::report {

using Json = nlohmann::ordered_json;

// CPU, cores, memory, GPU/driver/CUDA (nvidia-smi when present), flow2 version and build.
Json system_stage();

// load_dataset with skip_invalid and the first model's tokenizer: statistics of the splits
// training uses, of every other .jsonl file in the directory, and every invalid line.
Json dataset_stage(const std::filesystem::path& model, const ReportOptions& options);

// A short LoRA run on the first model and the dataset; "not measured" when this build has no
// trainer.
Json finetune_stage(const std::filesystem::path& model, const ReportOptions& options);

// Runs `body`; an exception becomes {"status": "failed", "error": what}.
Json guarded(const std::function<Json()>& body);

}  // namespace flow2::report
