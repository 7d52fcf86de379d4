#include <cmath>

#include "flow2/error.h"
#include "flow2/optimizer.h"

namespace flow2 {

AdamW::AdamW(std::vector<ParameterView> parameters, AdamWOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  for (const auto& parameter : parameters_) {
    state_.exp_avg.emplace_back(parameter.size, 0.0f);
    state_.exp_avg_sq.emplace_back(parameter.size, 0.0f);
  }
}

void AdamW::load_state(AdamWState state) {
  check(state.exp_avg.size() == parameters_.size() && state.exp_avg_sq.size() == parameters_.size(),
        "optimizer state holds {} parameters, the model {}", state.exp_avg.size(),
        parameters_.size());
  for (size_t i = 0; i < parameters_.size(); ++i) {
    check(state.exp_avg[i].size() == parameters_[i].size &&
              state.exp_avg_sq[i].size() == parameters_[i].size,
          "optimizer state of {} has the wrong size", parameters_[i].name);
  }
  state_ = std::move(state);
}

void AdamW::step(double learning_rate) {
  ++state_.step;
  // Scalars are formed in double as Python does, then used as float as torch's CPU kernels do
  // for a float32 tensor.
  const double t = static_cast<double>(state_.step);
  const float decay = static_cast<float>(1.0 - learning_rate * options_.weight_decay);
  const float lerp_weight = static_cast<float>(1.0 - options_.beta1);
  const float beta2 = static_cast<float>(options_.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
  const float step_size =
      static_cast<float>(-(learning_rate / (1.0 - std::pow(options_.beta1, t))));
  const float correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(options_.beta2, t)));
  const float eps = static_cast<float>(options_.eps);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    float* p = parameters_[i].value;
    const float* g = parameters_[i].grad;
    float* m = state_.exp_avg[i].data();
    float* v = state_.exp_avg_sq[i].data();
    for (size_t j = 0; j < parameters_[i].size; ++j) {
      p[j] *= decay;
      // torch's lerp takes this branch for weights below 0.5.
      m[j] = lerp_weight < 0.5f ? m[j] + lerp_weight * (g[j] - m[j])
                                : g[j] - (g[j] - m[j]) * (1.0f - lerp_weight);
      v[j] = v[j] * beta2 + one_minus_beta2 * g[j] * g[j];
      float denom = std::sqrt(v[j]) / correction2_sqrt + eps;
      p[j] = p[j] + step_size * m[j] / denom;
    }
  }
}

}  // namespace flow2
