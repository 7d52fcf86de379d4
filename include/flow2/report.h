// flow2 report: the whole analysis of the user's models, data and machine (benchmarks, peers,
// dataset statistics, a short LoRA run, system configuration) written as report.md, a
// self-contained report.html with inline SVG charts, and results.json with every number.
//
// Stages run one after another and each records its outcome in results.json: "ok", "failed"
// (with the error), "not measured" (with the reason: no trainer in this build, a peer not
// installed) or "skipped" (not asked for). The files are written whatever the outcome; the
// report fails (see ReportOutcome::failed) only when a stage the user asked for fails.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "flow2/peers.h"
#include "flow2/progress.h"

namespace flow2 {

struct ReportOptions {
  std::vector<std::filesystem::path> models;
  std::filesystem::path data;  // a .jsonl file or a dataset directory; empty: no data stages
  std::filesystem::path out = "flow2-report";
  bool quick = false;
  std::vector<std::string> compare;   // "transformers", "llama.cpp"
  std::vector<std::string> backends;  // empty: every registered backend
  // Benchmark sizes; 0 takes the default (quick: 128 / 32 / 2, otherwise 512 / 128 / 5).
  int64_t prompt_tokens = 0;
  int64_t gen_tokens = 0;
  int64_t reps = 0;
  int64_t max_seq_len = 2048;  // dataset truncation, as training would use
  // Fine-tuning run on the first model; 0 takes the default (quick: 8 steps of 4 x 128 tokens,
  // otherwise 30 steps of 4 x 256); steps < 0 skips the stage.
  int64_t finetune_steps = 0;
  int64_t finetune_seq_len = 0;
  int64_t finetune_batch = 4;
  uint64_t seed = 0;
  // The programs the peers run (flow2/peers.h); its sizes and seed are set from the report's.
  PeerOptions peers;
  // Progress: "[2/5] benchmark" per stage (done = stages finished, total = stages), and inside a
  // stage its own steps ("[2/5] benchmark: model 1/1 a.gguf cpu: warm load 1/2", with the
  // benchmark's or the fine-tuning's counts); failures as events to keep.
  ProgressCallback progress;
};

struct ReportOutcome {
  nlohmann::ordered_json results;   // what results.json holds
  std::vector<std::string> failed;  // stages the user asked for that failed
  std::filesystem::path markdown, html, json;
};

ReportOutcome run_report(const ReportOptions& options);

// Writes report.md, report.html and results.json for `results` into `out` (created). Every
// sentence and number of the documents is derived from `results`.
void write_report_files(const nlohmann::ordered_json& results, const std::filesystem::path& out);

}  // namespace flow2
