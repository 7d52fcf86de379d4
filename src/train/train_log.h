// The training log: one JSON object per line (a row per optimizer step, one per evaluation),
// flushed as it is written so that an interrupted run keeps every finished step.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <optional>

namespace flow2 {

class TrainLog {
 public:
  // A fresh log at `path`; with `resume_step`, the existing log keeps its rows up to that step
  // (rows written after the checkpoint by an interrupted run are dropped) and grows from there.
  TrainLog(std::filesystem::path path, std::optional<int64_t> resume_step);
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  void write(const nlohmann::ordered_json& row);

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

}  // namespace flow2
