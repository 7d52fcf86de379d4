// What the training loop needs from a model being fine-tuned: its trainable parameters with
// gradient buffers, and forward + backward on a batch. The loop owns normalization (by the
// token count of all micro-batches of an optimizer step), clipping and the optimizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flow2/batcher.h"

namespace flow2 {

struct ParameterView {
  std::string name;  // e.g. the PEFT key "base_model.model....q_proj.lora_A.weight"
  float* value = nullptr;
  float* grad = nullptr;
  size_t size = 0;
};

struct LossSum {
  double loss = 0.0;   // sum of the token cross-entropies (natural log)
  int64_t tokens = 0;  // targets counted (label_mask == 1)
};

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  virtual std::vector<ParameterView> parameters() = 0;
  virtual void zero_gradients() = 0;
  // Forward and backward on `batch`: every grad += d(sum of token losses) / d(parameter).
  // Token t of a row is a target when label_mask[t] == 1, predicted from position t - 1.
  // `step_seed` seeds dropout so that a run (and a resumed run) is reproducible.
  virtual LossSum accumulate_gradients(const Batch& batch, uint64_t step_seed) = 0;
  // Forward only (no dropout): the summed loss for evaluation.
  virtual LossSum evaluate(const Batch& batch) = 0;
};

}  // namespace flow2
