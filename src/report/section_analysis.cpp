// Backend and precision comparison, and scaling estimates derived from the measured speeds.
#include <fmt/format.h>

#include <cmath>
#include <map>

#include "report/format.h"
#include "report/rows.h"
#include "report/sections.h"

namespace flow2::report {

Section backend_section(const Json& results) {
  Section section{"backends", "Backend and precision comparison", {}};
  Table registry{{"Backend", "Kind", "In this build", "Measured"}, {}};
  const Json& backends = field(field(field(results, "system"), "flow2"), "backends");
  std::vector<PerfRow> rows = performance_rows(results);
  for (const auto& b : backends) {
    const std::string name = b.value("name", "");
    size_t measured = 0;
    for (const auto& row : rows) measured += !row.peer && row.backend == name && row.measured;
    registry.rows.push_back({name, b.value("gpu", false) ? "GPU" : "CPU",
                             b.value("available", false) ? "yes" : "no: " + b.value("reason", ""),
                             fmt::format("{} model(s)", measured)});
  }
  section.table(registry);
  // CPU against each GPU backend, per model measured on both.
  std::vector<std::string> comparisons;
  for (const auto& gpu : rows) {
    if (gpu.peer || gpu.backend == "cpu" || !gpu.measured) continue;
    for (const auto& cpu : rows) {
      if (cpu.peer || cpu.backend != "cpu" || !cpu.measured || cpu.model != gpu.model) continue;
      comparisons.push_back(
          fmt::format("{}: {} generates {}x and processes prompts {}x as fast "
                      "as cpu ({} vs {} tok/s; {} vs {} tok/s).",
                      gpu.model, gpu.backend, fixed(gpu.tg / cpu.tg, 2), fixed(gpu.pp / cpu.pp, 2),
                      fixed(gpu.tg, 1), fixed(cpu.tg, 1), fixed(gpu.pp, 1), fixed(cpu.pp, 1)));
    }
  }
  if (comparisons.empty()) {
    std::string reasons;
    for (const auto& b : backends) {
      if (!b.value("gpu", false)) continue;
      reasons += fmt::format("{}{}: {}", reasons.empty() ? "" : "; ", b.value("name", ""),
                             b.value("available", false) ? "not selected" : b.value("reason", ""));
    }
    section.paragraph(
        fmt::format("No GPU backend was measured ({}), so there is no CPU/GPU "
                    "comparison.",
                    reasons.empty() ? "none registered" : reasons));
  } else {
    section.list(comparisons);
  }
  // Precisions: models with the same architecture and parameter count (within 2%).
  std::vector<PerfRow> cpu_rows;
  for (const auto& row : rows) {
    if (!row.peer && row.measured && row.backend == "cpu") cpu_rows.push_back(row);
  }
  std::vector<bool> used(cpu_rows.size(), false);
  bool any_group = false;
  for (size_t i = 0; i < cpu_rows.size(); ++i) {
    if (used[i]) continue;
    std::vector<const PerfRow*> group = {&cpu_rows[i]};
    for (size_t j = i + 1; j < cpu_rows.size(); ++j) {
      if (std::abs(cpu_rows[j].parameters / cpu_rows[i].parameters - 1) < 0.02 &&
          cpu_rows[j].dtype != cpu_rows[i].dtype) {
        group.push_back(&cpu_rows[j]);
        used[j] = true;
      }
    }
    if (group.size() < 2) continue;
    any_group = true;
    const PerfRow* widest = group[0];
    for (const auto* row : group) {
      if (row->bits_per_weight > widest->bits_per_weight) widest = row;
    }
    Table table{{"Model", "Dtype", "Bits/weight", "Size", "Size vs " + widest->dtype,
                 "Generation tok/s", "Speed vs " + widest->dtype, "Peak RSS"},
                {}};
    for (const auto* row : group) {
      table.rows.push_back(
          {row->model, row->dtype, fixed(row->bits_per_weight, 2), megabytes(row->bytes_on_disk),
           fmt::format("-{}", percent(1 - row->bytes_on_disk / widest->bytes_on_disk)),
           fixed(row->tg, 1), fixed(row->tg / widest->tg, 2) + "x", megabytes(row->peak_rss)});
    }
    section.paragraph(
        fmt::format("{} parameters in {} precisions:", millions(widest->parameters), group.size()));
    section.table(table);
  }
  if (!any_group) {
    section.paragraph(
        "No model was given in more than one precision (models match when their parameter "
        "counts agree within 2%), so no size reduction from quantization was measured; pass the "
        "same model twice, e.g. a 16-bit directory and a 4-bit GGUF, to compare.");
  }
  return section;
}

Section scaling_section(const Json& results) {
  Section section{"scaling", "Scaling estimates", {}};
  std::vector<PerfRow> rows = measured_rows(results, true);
  if (rows.empty()) {
    section.paragraph("Nothing was measured, so there is nothing to extrapolate from.");
    return section;
  }
  const double memory = field(field(field(results, "system"), "memory"), "total_bytes").is_number()
                            ? results["system"]["memory"]["total_bytes"].get<double>()
                            : NAN;
  section.paragraph(
      "How these are derived: generating a token reads every weight once, so a measured "
      "generation speed times the bytes of weights gives the memory bandwidth the backend "
      "achieved; a model of P parameters at the same bits per weight then generates about "
      "bandwidth / (P x bits / 8) tokens/s. A prompt token costs about 2 P floating-point "
      "operations, so the measured prompt speed times 2 x the measured parameter count gives the "
      "compute rate, and a larger model processes about rate / (2 P) prompt tokens/s. Both ignore "
      "attention over long contexts and the KV cache; memory needed is the weights plus the "
      "measured overhead above them.");
  for (const auto& row : rows) {
    if (!known(row.tg) || !known(row.pp) || row.tg <= 0) continue;
    const double bandwidth = row.weight_bytes * row.tg;
    const double flops = 2 * row.parameters * row.pp;
    const double overhead = std::max(0.0, row.peak_rss - row.weight_bytes);
    section.paragraph(fmt::format(
        "From {}: {} x {} tok/s = {} GB/s; 2 x {} x {} tok/s = {} GFLOP/s; memory overhead {} "
        "above the weights; {} bits per weight.",
        row.label(), megabytes(row.weight_bytes), fixed(row.tg, 1), fixed(bandwidth / 1e9, 2),
        millions(row.parameters), fixed(row.pp, 1), fixed(flops / 1e9, 1), megabytes(overhead),
        fixed(row.bits_per_weight, 2)));
    Table table{{"Parameters", "Weights", "Est. generation tok/s", "Est. prompt tok/s",
                 "Est. memory", "Fits in RAM"},
                {}};
    for (double billions : {0.5, 1.0, 3.0, 7.0, 13.0}) {
      const double p = billions * 1e9;
      const double bytes = p * row.bits_per_weight / 8;
      const double need = bytes + overhead;
      table.rows.push_back({fixed(billions, 1) + " B", megabytes(bytes),
                            fixed(bandwidth / bytes, 1), fixed(flops / (2 * p), 1), megabytes(need),
                            known(memory) ? (need < memory ? "yes" : "no") + std::string(" (") +
                                                megabytes(memory) + ")"
                                          : "unknown"});
    }
    section.table(table);
  }
  return section;
}

}  // namespace flow2::report
