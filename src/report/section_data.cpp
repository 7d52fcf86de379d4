// The fine-tuning and dataset sections.
#include <fmt/format.h>

#include "report/format.h"
#include "report/rows.h"
#include "report/sections.h"

namespace flow2::report {

Section finetune_section(const Json& results) {
  Section section{"finetune", "Fine-tuning", {}};
  const Json& ft = field(results, "finetune");
  if (ft.value("status", "") != "ok") {
    section.paragraph("Fine-tuning: " + status_text(ft) +
                      ". The other sections do not depend on it.");
    return section;
  }
  const Json& c = ft["config"];
  const Json& s = ft["summary"];
  section.paragraph(fmt::format(
      "A short {} run on {}: rank {}, alpha {}, targets {} in all {} layers, {} steps of "
      "batch {} (examples truncated to {} tokens), learning rate {}, {}.",
      c.value("method", ""), ft.value("model", ""), c.value("rank", 0),
      fixed(c.value("alpha", 0.0), 0),
      fmt::format("{}", fmt::join(c["targets"].get<std::vector<std::string>>(), ", ")),
      c.value("layers", 0), c.value("steps", 0), c.value("batch_size", 0),
      c.value("max_seq_len", 0), c.value("learning_rate", 0.0), c.value("optimizer", "")));
  Table table{{"Measure", "Value"}, {}};
  table.rows.push_back(
      {"Trainable parameters", std::to_string(s.value("trainable_parameters", 0))});
  table.rows.push_back({"Trainable share", fixed(s.value("trainable_percent", 0.0), 3) + "%"});
  table.rows.push_back({"Training time", seconds(s.value("train_seconds", 0.0))});
  table.rows.push_back({"Samples/s", fixed(s.value("samples_per_s", 0.0), 2)});
  table.rows.push_back({"Tokens/s", fixed(s.value("tokens_per_s", 0.0), 1)});
  table.rows.push_back({"Final train loss", fixed(s.value("final_train_loss", 0.0), 4)});
  if (ft.contains("initial_eval")) {
    table.rows.push_back(
        {"Validation loss before", fixed(ft["initial_eval"].value("loss", 0.0), 4)});
  }
  if (ft.contains("final_eval")) {
    table.rows.push_back({"Validation loss after", fixed(ft["final_eval"].value("loss", 0.0), 4)});
  }
  section.table(table);
  const Json& curve = ft["loss_curve"];
  LineChart chart{"Training loss per step", "step", "loss", {}};
  Table losses{{"Step", "Loss", "Learning rate", "Grad norm", "Tokens/s"}, {}};
  for (const auto& point : curve) {
    chart.points.emplace_back(point.value("step", 0.0), point.value("loss", 0.0));
    losses.rows.push_back(
        {std::to_string(point.value("step", 0)), fixed(point.value("loss", 0.0), 4),
         fmt::format("{:.2e}", point.value("learning_rate", 0.0)),
         fixed(point.value("grad_norm", 0.0), 3), fixed(point.value("tokens_per_s", 0.0), 1)});
  }
  if (!curve.empty()) {
    section.chart(chart);
    section.table(losses);
  }
  return section;
}

Section dataset_section(const Json& results) {
  Section section{"dataset", "Dataset analysis", {}};
  const Json& data = field(results, "dataset");
  if (data.value("status", "") != "ok") {
    section.paragraph("The dataset was not analysed: " + status_text(data) + ".");
    return section;
  }
  const Json& stats = data["stats"];
  const int64_t max_len = stats.value("max_seq_len", 0);
  section.paragraph(fmt::format(
      "{} as training reads it (tokenizer and chat template of {}, examples truncated to {} "
      "tokens, invalid lines skipped and listed below).",
      data.value("path", ""), data.value("tokenizer_from", ""), max_len));
  Table table{{"Split", "File", "Format", "Examples", "Tokens min / mean / median / p95 / max",
               "Truncated", "Tokens", "Trained tokens", "Invalid lines"},
              {}};
  auto add = [&](const Json& split, const std::string& name) {
    const Json& t = split["tokens"];
    table.rows.push_back(
        {name,
         split.value("source", "") + (split.value("from_val_split", false) ? " (held out)" : ""),
         split.value("format", ""), std::to_string(split.value("examples", 0)),
         fmt::format("{} / {} / {} / {} / {}", t.value("min", 0), fixed(t.value("mean", 0.0), 1),
                     fixed(t.value("median", 0.0), 1), fixed(t.value("p95", 0.0), 1),
                     t.value("max", 0)),
         std::to_string(split.value("truncated", 0)),
         std::to_string(split.value("total_tokens", 0)),
         std::to_string(split.value("trained_tokens", 0)),
         std::to_string(split.value("skipped", 0))});
  };
  for (const auto& split : stats["splits"]) add(split, split.value("name", ""));
  for (const auto& other : data["other_files"]) {
    if (other.contains("stats")) {
      add(other["stats"], "not used");
    } else {
      table.rows.push_back({"not used", other.value("file", ""),
                            "error: " + other.value("error", ""), "", "", "", "", "", ""});
    }
  }
  section.table(table);
  std::vector<std::string> notes;
  for (const auto& split : stats["splits"]) {
    const int64_t truncated = split.value("truncated", 0), examples = split.value("examples", 0);
    notes.push_back(fmt::format(
        "{}: {} of {} examples are longer than {} tokens (longest {}, p95 {}){}.",
        split.value("name", ""), truncated, examples, max_len, split["tokens"].value("max", 0),
        fixed(split["tokens"].value("p95", 0.0), 1), truncated > 0 ? " and were truncated" : ""));
  }
  if (stats.value("boundary_merges", 0) > 0) {
    notes.push_back(fmt::format("{} assistant turn boundaries fell inside a token (trained on).",
                                stats.value("boundary_merges", 0)));
  }
  section.list(notes);
  const Json& invalid = data["invalid_lines"];
  if (invalid.empty()) {
    section.paragraph("No invalid lines were found.");
  } else {
    section.paragraph(fmt::format("{} invalid line(s) were skipped:", invalid.size()));
    std::vector<std::string> lines;
    for (const auto& issue : invalid) {
      lines.push_back(fmt::format("{}:{}: {}", issue.value("file", ""), issue.value("line", 0),
                                  issue.value("problem", "")));
    }
    section.list(lines);
  }
  return section;
}

}  // namespace flow2::report
