// Recommendations: fixed rules with thresholds, each applied to a measured number and citing it.
// A rule whose number is missing says so instead.
#include <fmt/format.h>

#include <algorithm>

#include "report/format.h"
#include "report/rows.h"
#include "report/sections.h"

namespace flow2::report {
namespace {

constexpr double kInteractiveTokS = 10;   // comfortable reading speed for chat
constexpr double kQuantizeAboveBits = 6;  // wider weights: a 4-bit GGUF cuts bytes per token
constexpr double kMemoryShare = 0.5;      // peak RSS above half of RAM leaves little headroom
constexpr double kSlowFirstTokenS = 2;    // a prompt that waits longer feels stuck
constexpr double kNoisyCv = 0.10;         // sd / mean above 10%: noisy measurement
constexpr int64_t kFewExamples = 100;

void model_rules(const PerfRow& row, double memory, std::vector<std::string>& out) {
  const std::string who = row.label();
  if (row.tg < kInteractiveTokS) {
    out.push_back(
        fmt::format("{}: generation at {} tok/s is below {} tok/s, the speed of "
                    "comfortable interactive reading: use a smaller or more quantized "
                    "model, or more threads.",
                    who, fixed(row.tg, 1), kInteractiveTokS));
  } else {
    out.push_back(
        fmt::format("{}: generation at {} tok/s is at least {} tok/s, fast enough for "
                    "interactive chat.",
                    who, fixed(row.tg, 1), kInteractiveTokS));
  }
  if (row.bits_per_weight > kQuantizeAboveBits) {
    const double q4_bits = 5.0;  // Q4_1: 4-bit codes plus an f16 scale and minimum per 32
    out.push_back(fmt::format(
        "{}: weights are stored at {} bits per weight (> {}); converting to Q4_1 (5 bits per "
        "weight: flow2 convert --type q4_1) would read {}% fewer bytes per generated token, and "
        "decoding, bound by memory bandwidth (see Scaling estimates), would speed up about {}x.",
        who, fixed(row.bits_per_weight, 2), kQuantizeAboveBits,
        fixed(100 * (1 - q4_bits / row.bits_per_weight), 0),
        fixed(row.bits_per_weight / q4_bits, 2)));
  } else {
    out.push_back(
        fmt::format("{}: weights are already at {} bits per weight (<= {}); more "
                    "quantization would trade accuracy for little speed.",
                    who, fixed(row.bits_per_weight, 2), kQuantizeAboveBits));
  }
  if (known(memory) && known(row.peak_rss)) {
    const double share = row.peak_rss / memory;
    out.push_back(
        share > kMemoryShare
            ? fmt::format("{}: the peak of {} is {} of RAM (> {}): leave the machine "
                          "otherwise idle or use a smaller model.",
                          who, megabytes(row.peak_rss), percent(share), percent(kMemoryShare))
            : fmt::format("{}: the peak of {} is {} of RAM (<= {}): there is room for "
                          "a larger model or several at once.",
                          who, megabytes(row.peak_rss), percent(share), percent(kMemoryShare)));
  }
  if (row.ttft > kSlowFirstTokenS) {
    out.push_back(
        fmt::format("{}: the first token of a long prompt takes {} s (> {} s): keep "
                    "prompts short or reuse the KV cache across turns (flow2 chat does).",
                    who, fixed(row.ttft, 3), kSlowFirstTokenS));
  }
  for (const auto& [name, mean, sd] :
       {std::tuple{"generation", row.tg, row.tg_sd}, std::tuple{"prompt", row.pp, row.pp_sd}}) {
    if (known(sd) && mean > 0 && sd / mean > kNoisyCv) {
      out.push_back(
          fmt::format("{}: {} speed varied by {} (sd / mean > {}): rerun with more "
                      "--reps on an otherwise idle machine before comparing.",
                      who, name, percent(sd / mean), percent(kNoisyCv)));
    }
  }
  if (!row.page_cache_dropped) {
    out.push_back(
        fmt::format("{}: the page cache could not be emptied, so the cold load time "
                    "({} s) is a cached load; a first load from disk may be slower.",
                    who, fixed(row.cold_load_s, 3)));
  }
}

}  // namespace

Section recommendations_section(const Json& results) {
  Section section{"recommendations", "Recommendations", {}};
  std::vector<std::string> out;
  const Json& memory_json = field(field(field(results, "system"), "memory"), "total_bytes");
  const double memory = memory_json.is_number() ? memory_json.get<double>() : NAN;
  std::vector<PerfRow> rows = measured_rows(results, true);
  if (rows.empty()) out.push_back("No model was measured, so there is no speed or memory advice.");
  for (const auto& row : rows) model_rules(row, memory, out);
  const Json& gpu = field(field(results, "system"), "gpu");
  const Json& devices = field(gpu, "devices");
  bool gpu_measured = false;
  for (const auto& row : rows) gpu_measured |= row.backend != "cpu";
  if (devices.is_array() && !devices.empty() && !gpu_measured) {
    out.push_back(
        fmt::format("{} GPU(s) are present ({}) but no GPU backend was measured; the "
                    "numbers above are CPU-only.",
                    devices.size(), devices[0].value("name", "")));
  }
  const Json& data = field(results, "dataset");
  if (data.value("status", "") == "ok") {
    const size_t invalid = data["invalid_lines"].size();
    if (invalid > 0) {
      out.push_back(
          fmt::format("The dataset has {} invalid line(s) (listed in Dataset analysis): "
                      "fix them or they are left out of training.",
                      invalid));
    }
    for (const auto& split : data["stats"]["splits"]) {
      const int64_t truncated = split.value("truncated", 0);
      if (truncated > 0) {
        out.push_back(
            fmt::format("{}: {} example(s) exceed max_seq_len {} (longest {}): raise "
                        "--max-seq-len to {} or shorten them.",
                        split.value("name", ""), truncated, data["stats"].value("max_seq_len", 0),
                        split["tokens"].value("max", 0), split["tokens"].value("max", 0)));
      }
      if (split.value("name", "") == "train" && split.value("examples", 0) < kFewExamples) {
        out.push_back(
            fmt::format("The train split has {} examples (< {}): expect the adapter to "
                        "memorize them; add examples before judging quality.",
                        split.value("examples", 0), kFewExamples));
      }
    }
  }
  const Json& ft = field(results, "finetune");
  if (ft.value("status", "") == "ok") {
    const double tok_s = ft["summary"].value("tokens_per_s", 0.0);
    const double tokens = ft.value("train_tokens_per_epoch", 0.0);
    if (tok_s > 0) {
      out.push_back(
          fmt::format("At the measured {} tok/s, one epoch over the train split's {} "
                      "tokens takes about {} s.",
                      fixed(tok_s, 1), static_cast<int64_t>(tokens), fixed(tokens / tok_s, 0)));
    }
    if (ft.contains("initial_eval") && ft.contains("final_eval")) {
      const double before = ft["initial_eval"].value("loss", 0.0);
      const double after = ft["final_eval"].value("loss", 0.0);
      out.push_back(after < before
                        ? fmt::format("The validation loss fell from {} to {} in the short run: "
                                      "the pipeline learns; train longer for a usable adapter.",
                                      fixed(before, 4), fixed(after, 4))
                        : fmt::format("The validation loss did not fall ({} to {}): lower the "
                                      "learning rate or check the data before a longer run.",
                                      fixed(before, 4), fixed(after, 4)));
    }
  } else if (!ft.empty()) {
    out.push_back("No fine-tuning advice: fine-tuning was " + status_text(ft) + ".");
  }
  section.list(out);
  return section;
}

}  // namespace flow2::report
