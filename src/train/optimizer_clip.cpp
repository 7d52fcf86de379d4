#include <cmath>

#include "flow2/optimizer.h"

namespace flow2 {

double clip_grad_norm(std::span<const ParameterView> parameters, double max_norm) {
  // Summed in double: the norm decides whether to clip, so it should not depend on the order.
  double squares = 0.0;
  for (const auto& parameter : parameters) {
    for (size_t j = 0; j < parameter.size; ++j) {
      double g = parameter.grad[j];
      squares += g * g;
    }
  }
  double norm = std::sqrt(squares);
  if (max_norm <= 0) return norm;
  double factor = max_norm / (norm + 1e-6);
  if (factor >= 1.0) return norm;
  const float scale = static_cast<float>(factor);
  for (const auto& parameter : parameters) {
    for (size_t j = 0; j < parameter.size; ++j) parameter.grad[j] *= scale;
  }
  return norm;
}

}  // namespace flow2
