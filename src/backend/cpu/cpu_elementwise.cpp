// Row-wise and elementwise CPU ops: embeddings, norms, activations, RoPE, residual adds.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  check(a.numel() == b.numel() && a.cols() == b.cols(), "{}: shapes {} and {} differ", op,
        shape_string(a.shape()), shape_string(b.shape()));
}

}  // namespace

float activation_value(float x, Activation activation) {
  switch (activation) {
    case Activation::Silu:
      return x / (1.0f + std::exp(-x));
    case Activation::GeluTanh: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    }
    case Activation::GeluErf:
      return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
    case Activation::Relu:
      return x > 0.0f ? x : 0.0f;
  }
  return x;
}

float activation_derivative(float x, Activation activation) {
  switch (activation) {
    case Activation::Silu: {
      const float sigmoid = 1.0f / (1.0f + std::exp(-x));
      return sigmoid * (1.0f + x * (1.0f - sigmoid));
    }
    case Activation::GeluTanh: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      const float t = std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x));
      return 0.5f * (1.0f + t) +
             0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
    }
    case Activation::GeluErf:
      return 0.5f * (1.0f + std::erf(x * 0.7071067811865476f)) +
             x * std::exp(-0.5f * x * x) * 0.3989422804014327f;
    case Activation::Relu:
      return x > 0.0f ? 1.0f : 0.0f;
  }
  return 1.0f;
}

void CpuBackend::embedding(Tensor& out, const Tensor& table, std::span<const int32_t> ids,
                           bool accumulate) {
  const int64_t width = table.cols();
  check(out.rows() == static_cast<int64_t>(ids.size()) && out.cols() == width,
        "embedding: output {} does not fit {} ids of width {}", shape_string(out.shape()),
        ids.size(), width);
  // Rows of a 16-bit or quantized table are decoded as they are gathered.
  const auto* source = static_cast<const std::byte*>(table.data());
  const uint64_t row_bytes = dtype_bytes(table.dtype(), static_cast<uint64_t>(width));
  float* target = out.data_as<float>();
#pragma omp parallel for schedule(static) if (out.numel() >= kMinParallelElements)
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::byte* row = source + static_cast<uint64_t>(ids[i]) * row_bytes;
    float* destination = target + static_cast<int64_t>(i) * width;
    if (accumulate) {
      std::vector<float> decoded(static_cast<size_t>(width));
      convert_to_f32(table.dtype(), row, decoded.size(), decoded.data());
      for (int64_t j = 0; j < width; ++j) destination[j] += decoded[j];
    } else {
      convert_to_f32(table.dtype(), row, static_cast<size_t>(width), destination);
    }
  }
}

void CpuBackend::rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  check_same_shape(out, x, "rms_norm");
  check(weight.numel() == x.cols(), "rms_norm: weight has {} elements, rows have {}",
        weight.numel(), x.cols());
  const int64_t rows = x.rows();
  const int64_t width = x.cols();
  const float* w = weight.data_as<float>();
#pragma omp parallel for schedule(static) if (x.numel() >= kMinParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x.data_as<float>() + r * width;
    float* result = out.data_as<float>() + r * width;
    double sum_squares = 0.0;
    for (int64_t j = 0; j < width; ++j) sum_squares += static_cast<double>(in[j]) * in[j];
    float inverse_rms = static_cast<float>(1.0 / std::sqrt(sum_squares / width + eps));
    for (int64_t j = 0; j < width; ++j) result[j] = w[j] * (in[j] * inverse_rms);
  }
}

void CpuBackend::layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                            float eps) {
  check_same_shape(out, x, "layer_norm");
  check(weight.numel() == x.cols() && bias.numel() == x.cols(),
        "layer_norm: weight/bias do not match rows of {}", x.cols());
  const int64_t rows = x.rows();
  const int64_t width = x.cols();
  const float* w = weight.data_as<float>();
  const float* b = bias.data_as<float>();
#pragma omp parallel for schedule(static) if (x.numel() >= kMinParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x.data_as<float>() + r * width;
    float* result = out.data_as<float>() + r * width;
    double sum = 0.0;
    for (int64_t j = 0; j < width; ++j) sum += in[j];
    double mean = sum / width;
    double sum_squares = 0.0;
    for (int64_t j = 0; j < width; ++j) sum_squares += (in[j] - mean) * (in[j] - mean);
    float inverse_std = static_cast<float>(1.0 / std::sqrt(sum_squares / width + eps));
    float mean_f = static_cast<float>(mean);
    for (int64_t j = 0; j < width; ++j) result[j] = (in[j] - mean_f) * inverse_std * w[j] + b[j];
  }
}

void CpuBackend::rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
                      std::span<const float> inv_freq) {
  check_rope(x, head_dim, positions, inv_freq);
  const int64_t half = head_dim / 2;
  const int64_t heads = x.cols() / head_dim;
#pragma omp parallel for schedule(static) if (x.numel() >= kMinParallelElements)
  for (int64_t r = 0; r < x.rows(); ++r) {
    // As transformers: the angle is a float32 product, then cos/sin of it.
    std::vector<float> cosines(half), sines(half);
    for (int64_t i = 0; i < half; ++i) {
      float angle = static_cast<float>(positions[r]) * inv_freq[i];
      cosines[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sines[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* head = x.data_as<float>() + r * x.cols() + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        float first = head[i];
        float second = head[i + half];
        head[i] = first * cosines[i] - second * sines[i];
        head[i + half] = second * cosines[i] + first * sines[i];
      }
    }
  }
}

void CpuBackend::kv_write(Tensor& cache, const Tensor& x, int64_t batch, int64_t n_tokens,
                          int64_t n_past, std::span<const int64_t> past) {
  const int64_t capacity = check_kv_write(cache, x, batch, n_tokens, n_past, past);
  const int64_t width = x.cols();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t offset = past.empty() ? n_past : past[static_cast<size_t>(b)];
    std::memcpy(cache.data_as<float>() + (b * capacity + offset) * width,
                x.data_as<float>() + b * n_tokens * width,
                static_cast<size_t>(n_tokens * width) * sizeof(float));
  }
}

void CpuBackend::gated_activation(Tensor& out, const Tensor& gate, const Tensor& up,
                                  Activation activation) {
  check_same_shape(gate, up, "gated_activation");
  check_same_shape(out, gate, "gated_activation");
  const int64_t count = out.numel();
  const float* g = gate.data_as<float>();
  const float* u = up.data_as<float>();
  float* result = out.data_as<float>();
#pragma omp parallel for schedule(static) if (count >= kMinParallelElements)
  for (int64_t i = 0; i < count; ++i) result[i] = activation_value(g[i], activation) * u[i];
}

void CpuBackend::activation(Tensor& x, Activation activation) {
  const int64_t count = x.numel();
  float* data = x.data_as<float>();
#pragma omp parallel for schedule(static) if (count >= kMinParallelElements)
  for (int64_t i = 0; i < count; ++i) data[i] = activation_value(data[i], activation);
}

void CpuBackend::add(Tensor& out, const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "add");
  check_same_shape(out, a, "add");
  const int64_t count = out.numel();
  const float* left = a.data_as<float>();
  const float* right = b.data_as<float>();
  float* result = out.data_as<float>();
#pragma omp parallel for schedule(static) if (count >= kMinParallelElements)
  for (int64_t i = 0; i < count; ++i) result[i] = left[i] + right[i];
}

}  // namespace flow2
