// The LoRA training model's state and its per-layer forward and backward (lora_layer.cpp); the
// batch-level passes and parameters are in lora_training.cpp.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "flow2/lora_training.h"
#include "model/decoder_weights.h"
#include "model/rope_frequencies.h"
#include "train/lora_site.h"

namespace flow2 {

// The Linear layers of a decoder layer that a LoRA module can adapt.
enum Projection { kQ, kK, kV, kO, kGate, kUp, kDown, kProjections };

// Where a projection's LoRA branch comes from: a site and its first row of B (GPT-2's c_attn
// feeds q, k, v from one site).
struct LoraSlot {
  LoraSite* site = nullptr;
  int64_t first_row = 0;
};

// What one layer's backward needs from its forward, [tokens, features] each.
struct LayerActivations {
  Tensor input;  // the residual stream entering the layer
  Tensor attention_normed, q, k, v, attended, lse;
  Tensor middle;  // the residual stream after attention
  Tensor mlp_normed;
  Tensor gate;                              // gated MLPs: gate before the activation
  Tensor up;                                // up projection (plain MLPs: before the activation)
  Tensor inner;                             // input of the down projection
  std::array<Tensor, kProjections> lora_u;  // dropout(x) A^T of each projection's site
};

// The batch as the layers see it.
struct StepInputs {
  int64_t tokens = 0;  // rows * columns
  std::vector<int32_t> positions;
  std::vector<int32_t> negated_positions;  // RoPE's backward
  std::vector<int32_t> segments;
  std::span<const float> inv_freq;
  int64_t batch = 0, columns = 0;
  uint64_t seed = 0;
  bool train = false;  // dropout on
};

class LoraTrainingModel final : public TrainableModel {
 public:
  LoraTrainingModel(const Checkpoint& checkpoint, LoraAdapter& adapter,
                    const LoraTrainingOptions& options);

  std::vector<ParameterView> parameters() override;
  void zero_gradients() override;
  LossSum accumulate_gradients(const Batch& batch, uint64_t step_seed) override;
  LossSum evaluate(const Batch& batch) override;

 private:
  LossSum run(const Batch& batch, uint64_t seed, bool backward);
  StepInputs step_inputs(const Batch& batch, uint64_t seed, bool train);
  void allocate(LayerActivations& a, int64_t tokens, size_t layer);
  // x_out = layer(a.input); a keeps what backward needs.
  void forward_layer(size_t layer, LayerActivations& a, Tensor& x_out, const StepInputs& step);
  // d_x: the gradient at the layer's output in, at its input out (unless `need_input_grad` is
  // false: the lowest adapted layer, below which nothing trains).
  void backward_layer(size_t layer, LayerActivations& a, Tensor& d_x, const StepInputs& step,
                      bool need_input_grad);
  void linear(Tensor& out, const Tensor& x, const Linear& linear, LayerActivations& a, size_t layer,
              Projection projection, const StepInputs& step);
  SegmentAttention attention_geometry(size_t layer, const StepInputs& step) const;
  void norm(Tensor& out, const Tensor& x, const Norm& norm);
  void norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Norm& norm);

  ModelConfig config_;
  LoraAdapter& adapter_;
  LoraTrainingOptions options_;
  std::unique_ptr<Backend> backend_;
  DecoderWeights weights_;
  RopeFrequencies rope_;
  std::vector<std::unique_ptr<LoraSite>> sites_;
  std::vector<std::array<LoraSlot, kProjections>> slots_;  // per layer
  size_t lowest_adapted_ = 0;
};

}  // namespace flow2
