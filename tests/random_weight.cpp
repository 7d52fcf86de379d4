#include "random_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "flow2/quant.h"
#include "test_support.h"

namespace flow2::testing {

HostTensor random_weight(DType dtype, int64_t n, int64_t k, uint64_t seed) {
  const std::vector<float> values = random_values(static_cast<size_t>(n * k), seed, 0.5f);
  const DType stored = dtype == DType::Q4_A64 ? DType::Q4_1 : dtype;
  auto bytes = std::make_shared<std::vector<std::byte>>(dtype_bytes(stored, values.size()));
  if (stored == DType::F32) {
    std::memcpy(bytes->data(), values.data(), bytes->size());
  } else if (stored == DType::BF16 || stored == DType::F16) {
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t bits = stored == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(bytes->data() + 2 * i, &bits, 2);
    }
  } else {
    quantize_blocks(stored, values.data(), values.size(), bytes->data());
  }
  if (dtype == DType::Q4_A64) {
    const size_t block = dtype_bytes(DType::Q4_1, 32);
    for (size_t b = 1; b < bytes->size() / block; b += 2) {
      std::memcpy(bytes->data() + b * block, bytes->data() + (b - 1) * block, 4);  // d and m
    }
  }
  HostTensor tensor{"w", stored, {n, k}, *bytes, nullptr};
  tensor.owner = bytes;
  return tensor;
}

double product_bound(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n,
                     int64_t k) {
  double worst = 0.0;
  for (int64_t row = 0; row < m; ++row) {
    std::vector<float> largest(static_cast<size_t>(k / 32));
    for (int64_t j = 0; j < k; ++j) {
      largest[j / 32] = std::max(largest[j / 32], std::fabs(x[row * k + j]));
    }
    for (int64_t col = 0; col < n; ++col) {
      double int16 = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        int16 += std::fabs(w[col * k + j]) * largest[j / 32] / 32767.0 / 2;
      }
      worst = std::max(worst, int16);
    }
  }
  return 2 * (worst + 1e-4 * std::sqrt(k / 256.0));
}

}  // namespace flow2::testing
