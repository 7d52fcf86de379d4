// Executive summary and best performers: the headline numbers of every other section.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>

#include "report/format.h"
#include "report/rows.h"
#include "report/sections.h"

namespace flow2::report {
namespace {

std::string finetune_finding(const Json& ft) {
  if (ft.value("status", "") != "ok") return "Fine-tuning: " + status_text(ft) + ".";
  const Json& s = field(ft, "summary");
  const Json& curve = field(ft, "loss_curve");
  std::string text = fmt::format(
      "LoRA fine-tuning of {} trained {} parameters ({} of the model) for {} steps at {} "
      "samples/s and {} tok/s",
      std::filesystem::path(ft.value("model", "")).filename().string(),
      s.value("trainable_parameters", 0), fixed(s.value("trainable_percent", 0.0), 3) + "%",
      s.value("steps", 0), fixed(s.value("samples_per_s", 0.0), 2),
      fixed(s.value("tokens_per_s", 0.0), 1));
  if (curve.is_array() && !curve.empty()) {
    text += fmt::format("; the training loss went from {} (step 1) to {} (step {})",
                        fixed(curve.front().value("loss", 0.0), 4),
                        fixed(curve.back().value("loss", 0.0), 4), curve.back().value("step", 0));
  }
  return text + ".";
}

}  // namespace

std::string status_text(const Json& stage) {
  if (!stage.is_object()) return "not run";
  const std::string status = stage.value("status", "not run");
  if (status == "failed") return "failed: " + stage.value("error", "");
  if (stage.contains("reason")) return status + ": " + stage.value("reason", "");
  return status;
}

Section summary_section(const Json& results) {
  Section section{"summary", "Executive summary", {}};
  const Json& bench = field(results, "benchmark");
  if (!bench.is_object() || !bench.contains("models")) {
    section.paragraph(
        "No benchmark results: " + status_text(field(field(results, "stages"), "benchmark")) + ".");
  } else {
    section.paragraph(fmt::format(
        "{} model(s) measured with {} prompt tokens and {} generated tokens, {} repetitions "
        "each, on {} CPU thread(s).",
        bench["models"].size(), bench.value("prompt_tokens", 0), bench.value("gen_tokens", 0),
        bench.value("reps", 0), bench.value("threads", 0)));
  }
  std::vector<std::string> findings;
  for (const auto& row : performance_rows(results)) {
    if (!row.measured) continue;
    // Only what was measured: llama-bench, say, reports no time to first token or memory.
    std::vector<std::string> parts;
    if (known(row.tg)) parts.push_back("generation " + rate(row.tg));
    if (known(row.pp)) parts.push_back("prompt processing " + rate(row.pp));
    if (known(row.ttft)) parts.push_back("time to first token " + seconds(row.ttft));
    if (known(row.peak_rss)) parts.push_back("peak resident memory " + megabytes(row.peak_rss));
    findings.push_back(fmt::format("{}: {}.", row.label(), fmt::join(parts, ", ")));
  }
  // GPU coverage, from the registry's reasons.
  bool gpu_measured = false;
  std::vector<std::string> gpu_reasons;
  for (const auto& row : performance_rows(results)) {
    if (row.peer || row.backend == "cpu") continue;
    if (row.measured)
      gpu_measured = true;
    else
      gpu_reasons.push_back(row.backend + ": " + row.reason);
  }
  if (!gpu_measured) {
    findings.push_back("No GPU backend was measured" +
                       (gpu_reasons.empty() ? std::string(" (none was selected)")
                                            : " (" + gpu_reasons.front() + ")") +
                       ".");
  }
  for (const auto& row : performance_rows(results)) {
    if (!row.peer) continue;
    if (!row.measured) {
      findings.push_back(fmt::format("Peer {} on {}: {}{}.", row.backend, row.model,
                                     row.failed ? "failed: " : "", row.reason));
      continue;
    }
    for (const auto& own : measured_rows(results, true)) {
      if (own.model != row.model || own.backend != row.device) continue;
      for (const auto& [verb, mine, theirs] :
           {std::tuple{"generates", own.tg, row.tg}, {"processes prompts", own.pp, row.pp}}) {
        if (!known(mine) || !known(theirs) || theirs <= 0) continue;
        findings.push_back(fmt::format("flow2 ({}) {} {}x as fast as {} on {} ({} vs {} tok/s).",
                                       own.backend, verb, fixed(mine / theirs, 2), row.source,
                                       row.model, fixed(mine, 1), fixed(theirs, 1)));
      }
    }
  }
  const Json& data = field(results, "dataset");
  if (data.value("status", "") == "ok") {
    size_t invalid = field(data, "invalid_lines").size();
    std::vector<std::string> parts;
    for (const auto& split : field(field(data, "stats"), "splits")) {
      parts.push_back(
          fmt::format("{} {} examples", split.value("examples", 0), split.value("name", "")));
    }
    findings.push_back(fmt::format("Dataset {}: {}; {} invalid line(s) skipped and listed.",
                                   data.value("path", ""), fmt::join(parts, ", "), invalid));
  } else if (!data.empty()) {
    findings.push_back("Dataset analysis: " + status_text(data) + ".");
  }
  if (results.contains("finetune")) findings.push_back(finetune_finding(results["finetune"]));
  for (const auto& failed : field(results, "failed_stages")) {
    findings.push_back("Stage " + failed.get<std::string>() + " failed; its section says why.");
  }
  section.list(findings);
  return section;
}

Section best_section(const Json& results) {
  Section section{"best", "Best performers by category", {}};
  std::vector<PerfRow> rows = measured_rows(results, false);
  if (rows.empty()) {
    section.paragraph("Nothing was measured, so there are no best performers.");
    return section;
  }
  struct Category {
    std::string name;
    std::function<double(const PerfRow&)> value;
    bool higher_is_better;
    std::function<std::string(double)> print;
  };
  const std::vector<Category> categories = {
      {"Fastest generation", [](const PerfRow& r) { return r.tg; }, true,
       [](double v) { return rate(v); }},
      {"Fastest prompt processing", [](const PerfRow& r) { return r.pp; }, true,
       [](double v) { return rate(v); }},
      {"Shortest time to first token", [](const PerfRow& r) { return r.ttft; }, false,
       [](double v) { return seconds(v); }},
      {"Fastest warm load", [](const PerfRow& r) { return r.warm_load_s; }, false,
       [](double v) { return seconds(v); }},
      {"Lowest peak memory", [](const PerfRow& r) { return r.peak_rss; }, false,
       [](double v) { return megabytes(v); }},
      // A peer reads the same file as flow2: only flow2's rows rank on size.
      {"Smallest on disk", [](const PerfRow& r) { return r.peer ? NAN : r.bytes_on_disk; }, false,
       [](double v) { return megabytes(v); }},
  };
  Table table{{"Category", "Best", "Value", "Runner-up"}, {}};
  for (const auto& category : categories) {
    std::vector<const PerfRow*> ranked;
    for (const auto& row : rows) {
      if (known(category.value(row))) ranked.push_back(&row);
    }
    if (ranked.empty()) {
      table.rows.push_back({category.name, "not measured", "", ""});
      continue;
    }
    std::stable_sort(ranked.begin(), ranked.end(), [&](const PerfRow* a, const PerfRow* b) {
      return category.higher_is_better ? category.value(*a) > category.value(*b)
                                       : category.value(*a) < category.value(*b);
    });
    std::string runner_up =
        ranked.size() > 1 ? ranked[1]->label() + ": " + category.print(category.value(*ranked[1]))
                          : "none (one configuration measured)";
    table.rows.push_back(
        {category.name, ranked[0]->label(), category.print(category.value(*ranked[0])), runner_up});
  }
  if (rows.size() == 1) {
    section.paragraph("Only one configuration was measured (" + rows[0].label() +
                      "), so it leads every category; give more --model or --compare to rank.");
  }
  section.table(table);
  return section;
}

}  // namespace flow2::report
