// A training checkpoint: the trainable values, AdamW's moments and step, the position in the
// batch stream and the options, in one safetensors file written atomically, so that resuming
// continues exactly where the run was.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <vector>

#include "flow2/optimizer.h"
#include "flow2/trainable.h"

namespace flow2 {

struct TrainingPosition {
  int64_t step = 0;         // optimizer steps completed
  int64_t micro_batch = 0;  // global index of the next micro-batch
  int64_t epoch = 0;        // of the next micro-batch
  int64_t batch = 0;        // its index within that epoch
  uint64_t seed = 0;        // the batch order and dropout seeds derive from (seed, micro_batch)
};

struct TrainingCheckpoint {
  TrainingPosition position;
  nlohmann::json options;  // what shapes the trajectory; a resumed run must match it
  std::vector<std::vector<float>> values;
  AdamWState optimizer;
};

std::filesystem::path training_state_path(const std::filesystem::path& output_dir);

void save_training_checkpoint(const std::filesystem::path& path,
                              const std::vector<ParameterView>& parameters,
                              const AdamWState& optimizer, const TrainingPosition& position,
                              const nlohmann::json& options);

// Reads a checkpoint for `parameters` (names and sizes must match).
TrainingCheckpoint load_training_checkpoint(const std::filesystem::path& path,
                                            const std::vector<ParameterView>& parameters);

}  // namespace flow2
