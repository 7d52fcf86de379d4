// The optimizer step of fine-tuning: AdamW exactly as torch.optim.AdamW computes it (float32
// state and arithmetic, scalars in double as Python forms them), and global-norm gradient
// clipping as torch.nn.utils.clip_grad_norm_.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "flow2/trainable.h"

namespace flow2 {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// One exp_avg / exp_avg_sq pair per parameter, in the order of the views.
struct AdamWState {
  int64_t step = 0;  // steps taken
  std::vector<std::vector<float>> exp_avg;
  std::vector<std::vector<float>> exp_avg_sq;
};

class AdamW {
 public:
  AdamW(std::vector<ParameterView> parameters, AdamWOptions options);

  // With t = step + 1, for every element (torch's single-tensor path):
  //   p *= 1 - lr * wd;  m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g * g
  //   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  void step(double learning_rate);

  const AdamWState& state() const { return state_; }
  // Restores a saved state; the sizes must match the parameters.
  void load_state(AdamWState state);
  const std::vector<ParameterView>& parameters() const { return parameters_; }

 private:
  std::vector<ParameterView> parameters_;
  AdamWOptions options_;
  AdamWState state_;
};

// The L2 norm of all gradients together. When max_norm > 0 and max_norm / (norm + 1e-6) < 1,
// every gradient is multiplied by that factor (torch clamps the factor at 1 and multiplies
// always, which is the same). Returns the norm before clipping.
double clip_grad_norm(std::span<const ParameterView> parameters, double max_norm);

}  // namespace flow2
