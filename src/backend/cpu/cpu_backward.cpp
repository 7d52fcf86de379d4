// Backward of the CPU row-wise and elementwise ops (norms, activations) for training. Norm
// statistics are recomputed from the stored input, as llm.c does, rather than kept.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

void check_norm_shapes(const Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight,
                       const char* op) {
  check(dx.numel() == x.numel() && dy.numel() == x.numel() && dx.cols() == x.cols() &&
            dy.cols() == x.cols() && weight.numel() == x.cols(),
        "{}: shapes {}, {}, {} and weight {} do not agree", op, shape_string(dx.shape()),
        shape_string(dy.shape()), shape_string(x.shape()), shape_string(weight.shape()));
}

}  // namespace

void CpuBackend::rms_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x,
                                   const Tensor& weight, float eps) {
  check_norm_shapes(dx, dy, x, weight, "rms_norm_backward");
  const int64_t width = x.cols();
  const float* w = weight.data_as<float>();
#pragma omp parallel for schedule(static) if (x.numel() >= kMinParallelElements)
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* in = x.data_as<float>() + r * width;
    const float* grad = dy.data_as<float>() + r * width;
    float* out = dx.data_as<float>() + r * width;
    double sum_squares = 0.0, dot = 0.0;
    for (int64_t j = 0; j < width; ++j) {
      sum_squares += static_cast<double>(in[j]) * in[j];
      dot += static_cast<double>(w[j]) * grad[j] * in[j];
    }
    // y = w * x * r with r = (mean(x^2) + eps)^-1/2: dx = r * w * dy - x * r^3 * dot / width.
    const double inverse_rms = 1.0 / std::sqrt(sum_squares / width + eps);
    const float a = static_cast<float>(inverse_rms);
    const float b = static_cast<float>(inverse_rms * inverse_rms * inverse_rms * dot / width);
    for (int64_t j = 0; j < width; ++j) out[j] += a * w[j] * grad[j] - b * in[j];
  }
}

void CpuBackend::layer_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x,
                                     const Tensor& weight, float eps) {
  check_norm_shapes(dx, dy, x, weight, "layer_norm_backward");
  const int64_t width = x.cols();
  const float* w = weight.data_as<float>();
#pragma omp parallel for schedule(static) if (x.numel() >= kMinParallelElements)
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* in = x.data_as<float>() + r * width;
    const float* grad = dy.data_as<float>() + r * width;
    float* out = dx.data_as<float>() + r * width;
    double sum = 0.0;
    for (int64_t j = 0; j < width; ++j) sum += in[j];
    const double mean = sum / width;
    double sum_squares = 0.0;
    for (int64_t j = 0; j < width; ++j) sum_squares += (in[j] - mean) * (in[j] - mean);
    const double inverse_std = 1.0 / std::sqrt(sum_squares / width + eps);
    // With g = w * dy and xhat the normalized input: dx = rstd * (g - mean(g) - xhat *
    // mean(g * xhat)).
    double mean_g = 0.0, mean_g_xhat = 0.0;
    for (int64_t j = 0; j < width; ++j) {
      const double g = static_cast<double>(w[j]) * grad[j];
      mean_g += g;
      mean_g_xhat += g * (in[j] - mean) * inverse_std;
    }
    mean_g /= width;
    mean_g_xhat /= width;
    for (int64_t j = 0; j < width; ++j) {
      const double xhat = (in[j] - mean) * inverse_std;
      out[j] += static_cast<float>(
          inverse_std * (static_cast<double>(w[j]) * grad[j] - mean_g - xhat * mean_g_xhat));
    }
  }
}

void CpuBackend::gated_activation_backward(Tensor& d_gate, Tensor& d_up, const Tensor& d_out,
                                           const Tensor& gate, const Tensor& up,
                                           Activation activation) {
  const int64_t count = d_out.numel();
  check(d_gate.numel() == count && d_up.numel() == count && gate.numel() == count &&
            up.numel() == count,
        "gated_activation_backward: sizes differ from {}", shape_string(d_out.shape()));
  const float* dy = d_out.data_as<float>();
  const float* g = gate.data_as<float>();
  const float* u = up.data_as<float>();
  float* dg = d_gate.data_as<float>();
  float* du = d_up.data_as<float>();
#pragma omp parallel for schedule(static) if (count >= kMinParallelElements)
  for (int64_t i = 0; i < count; ++i) {
    const float grad = dy[i];
    du[i] = grad * activation_value(g[i], activation);
    dg[i] = grad * u[i] * activation_derivative(g[i], activation);
  }
}

void CpuBackend::activation_backward(Tensor& dx, const Tensor& d_out, const Tensor& x,
                                     Activation activation) {
  const int64_t count = x.numel();
  check(dx.numel() == count && d_out.numel() == count, "activation_backward: sizes differ from {}",
        shape_string(x.shape()));
  const float* dy = d_out.data_as<float>();
  const float* in = x.data_as<float>();
  float* out = dx.data_as<float>();
#pragma omp parallel for schedule(static) if (count >= kMinParallelElements)
  for (int64_t i = 0; i < count; ++i) out[i] = dy[i] * activation_derivative(in[i], activation);
}

}  // namespace flow2
