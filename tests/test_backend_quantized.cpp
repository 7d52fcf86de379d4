// Block-quantized weights on every inference backend against the CPU backend, on random blocks:
// matmul for 1-4 rows of x (CUDA's GEMV kernels), 9 and 37 rows (4-bit weights on CUDA: decoded
// in registers for tensor cores, one and several tiles of 8 rows) and 80 rows (decoded slices
// and a GEMM), embeddings and the read-back of the weight, for Q8_0, Q4_0, Q4_1, Q4_K and MLX's
// 4-bit group-64 weights (the loader's Q4_1 whose pairs of blocks share d and m; the CUDA
// backend holds those as Q4_A64 without a 16-bit copy).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/quant.h"
#include "io/mlx_quantization.h"
#include "test_support.h"

namespace flow2 {
namespace {

using Matrix = std::vector<float>;

HostTensor owned_tensor(std::string name, DType dtype, Shape shape, std::vector<std::byte> bytes) {
  auto storage = std::make_shared<std::vector<std::byte>>(std::move(bytes));
  HostTensor tensor{std::move(name), dtype, std::move(shape), *storage, nullptr};
  tensor.owner = storage;
  return tensor;
}

// Blocks of `dtype` quantized from random values.
HostTensor random_blocks(DType dtype, int64_t n, int64_t k, uint64_t seed) {
  const Matrix values = testing::random_values(static_cast<size_t>(n * k), seed, 0.5f);
  std::vector<std::byte> bytes(dtype_bytes(dtype, values.size()));
  quantize_blocks(dtype, values.data(), values.size(), bytes.data());
  return owned_tensor("w", dtype, {n, k}, std::move(bytes));
}

// An MLX 4-bit group-64 weight (uint32 codes, f16 scales and biases) as the loader hands it on.
HostTensor mlx_weight(int64_t n, int64_t k, uint64_t seed) {
  const int64_t groups = k / 64;
  const Matrix codes = testing::random_values(static_cast<size_t>(n * k), seed);
  const Matrix noise = testing::random_values(static_cast<size_t>(2 * n * groups), seed + 1);
  std::vector<uint32_t> words(static_cast<size_t>(n * k / 8), 0);
  for (size_t j = 0; j < codes.size(); ++j) {
    const auto code = static_cast<uint32_t>(std::min(15.0f, std::floor((codes[j] + 1) * 8)));
    words[j / 8] |= code << (4 * (j % 8));  // element j: bits 4j .. 4j + 3, LSB first
  }
  std::vector<std::byte> packed(words.size() * 4), scales(n * groups * 2), biases(n * groups * 2);
  std::memcpy(packed.data(), words.data(), packed.size());
  for (int64_t i = 0; i < n * groups; ++i) {
    const uint16_t scale = f32_to_f16(0.002f + 0.01f * std::fabs(noise[2 * i]));
    const uint16_t bias = f32_to_f16(0.08f * noise[2 * i + 1]);
    std::memcpy(scales.data() + 2 * i, &scale, 2);
    std::memcpy(biases.data() + 2 * i, &bias, 2);
  }
  const HostTensor weight = owned_tensor("w.weight", DType::U32, {n, k / 8}, std::move(packed));
  const HostTensor scale = owned_tensor("w.scales", DType::F16, {n, groups}, std::move(scales));
  const HostTensor bias = owned_tensor("w.biases", DType::F16, {n, groups}, std::move(biases));
  return mlx_dequantized_weight("w.weight", weight, scale, bias, MlxQuantParams{64, 4}, "test");
}

// The part of sum |x_i w_i| a backend's product may be off by: int16 x per block of 32 where the
// CPU reads blocks for up to 4 rows, bf16 tensor cores for prompts on CUDA (test_support.h).
double product_bound(const std::string& backend, const Matrix& x, const Matrix& w, int64_t m,
                     int64_t n, int64_t k) {
  const double tensor_cores = testing::product_relative_error(backend, true, m);
  double bound = 0.0;
  for (int64_t row = 0; row < m; ++row) {
    for (int64_t col = 0; col < n; ++col) {
      double magnitude = 0.0, int16 = 0.0;
      for (int64_t b = 0; b < k / 32; ++b) {
        float largest = 0.0f;
        for (int64_t j = 0; j < 32; ++j) {
          largest = std::max(largest, std::fabs(x[row * k + b * 32 + j]));
        }
        for (int64_t j = 0; j < 32; ++j) {
          const double wj = std::fabs(w[col * k + b * 32 + j]);
          magnitude += wj * std::fabs(x[row * k + b * 32 + j]);
          int16 += wj * largest / 32767.0 / 2;
        }
      }
      bound = std::max(bound, tensor_cores * magnitude + (m <= 4 ? int16 : 0.0));
    }
  }
  return bound + 1e-4 * std::sqrt(k / 256.0);
}

class QuantizedBackendOps : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason(GetParam()); !reason.empty()) GTEST_SKIP() << reason;
    backend_ = make_backend(GetParam());
    cpu_ = make_backend("cpu");
  }
  // Everything this backend computes with `host` against the CPU backend.
  void check_against_cpu(const HostTensor& host, DType expected_dtype);

  std::unique_ptr<Backend> backend_, cpu_;
};

void QuantizedBackendOps::check_against_cpu(const HostTensor& host, DType expected_dtype) {
  const int64_t n = host.shape[0], k = host.shape[1];
  const std::string what = fmt::format("{} {}", dtype_name(host.dtype), shape_string(host.shape));
  const Matrix decoded = host.to_f32();
  const Tensor weight = backend_->upload_weight(host);
  const Tensor cpu_weight = cpu_->upload_weight(host);
  EXPECT_EQ(weight.dtype(), expected_dtype) << what;
  // The device form reads back as the CPU decodes the blocks, bit for bit.
  ASSERT_TRUE(backend_->to_host(weight) == decoded) << what;

  const Matrix bias = testing::random_values(static_cast<size_t>(n), 7);
  const Tensor b = backend_->from_host(bias, {n}), cpu_b = cpu_->from_host(bias, {n});
  for (int64_t m : {1, 2, 3, 4, 9, 37, 80}) {
    const Matrix x = testing::random_values(static_cast<size_t>(m * k), 100 + m);
    Tensor out = backend_->empty({m, n}), cpu_out = cpu_->empty({m, n});
    backend_->matmul(out, backend_->from_host(x, {m, k}), weight, &b);
    cpu_->matmul(cpu_out, cpu_->from_host(x, {m, k}), cpu_weight, &cpu_b);
    const double bound =
        product_bound(GetParam(), x, decoded, m, n, k) + product_bound("cpu", x, decoded, m, n, k);
    EXPECT_LT(testing::max_abs_difference(backend_->to_host(out), cpu_->to_host(cpu_out)), bound)
        << what << " m=" << m;
  }

  // Embeddings gather the same floats; accumulating adds them once more.
  const std::vector<int32_t> ids = {0, static_cast<int32_t>(n - 1), static_cast<int32_t>(n / 2), 0};
  const auto count = static_cast<int64_t>(ids.size());
  for (bool accumulate : {false, true}) {
    const Matrix start = testing::random_values(static_cast<size_t>(count * k), 11);
    Tensor rows = backend_->from_host(start, {count, k});
    Tensor cpu_rows = cpu_->from_host(start, {count, k});
    backend_->embedding(rows, weight, ids, accumulate);
    cpu_->embedding(cpu_rows, cpu_weight, ids, accumulate);
    EXPECT_TRUE(backend_->to_host(rows) == cpu_->to_host(cpu_rows))
        << what << " accumulate " << accumulate;
  }
}

// Rows of 1 up to 2000 (CUDA splits short matrices' rows over warps, and the last warp of a
// matrix has rows past its end); widths from one group to rows whose split form needs padding.
TEST_P(QuantizedBackendOps, BlocksMatchTheCpuBackend) {
  uint64_t seed = 1;
  for (DType dtype : {DType::Q8_0, DType::Q4_0, DType::Q4_1}) {
    for (auto [n, k] :
         {std::pair<int64_t, int64_t>{1, 32},
          {5, 96},
          {37, 512},
          {300, 4096},
          {2000, 1024},
          {64, 6144},      // CUDA stages one row of x as int16 with 8 loads per thread ...
          {64, 14336}}) {  // ... and with 16 (the down projection's width)
      check_against_cpu(random_blocks(dtype, n, k, seed++), dtype);
    }
  }
}

TEST_P(QuantizedBackendOps, KQuantBlocksMatchTheCpuBackend) {
  uint64_t seed = 50;
  for (auto [n, k] :
       {std::pair<int64_t, int64_t>{1, 256}, {37, 512}, {300, 4096}, {2000, 1024}, {64, 14336}}) {
    check_against_cpu(random_blocks(DType::Q4_K, n, k, seed++), DType::Q4_K);
  }
}

TEST_P(QuantizedBackendOps, MlxGroup64WeightsMatchTheCpuBackend) {
  uint64_t seed = 80;
  // CUDA keeps a group's scale and bias once (Q4_A64); the CPU reads the loader's Q4_1.
  const DType expected = GetParam() == "cuda" ? DType::Q4_A64 : DType::Q4_1;
  for (auto [n, k] :
       {std::pair<int64_t, int64_t>{1, 64}, {37, 576}, {300, 4096}, {2000, 1024}, {64, 14336}}) {
    const HostTensor host = mlx_weight(n, k, seed++);
    ASSERT_EQ(host.dtype, DType::Q4_1);
    check_against_cpu(host, expected);
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, QuantizedBackendOps,
                         ::testing::ValuesIn(testing::inference_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flow2
