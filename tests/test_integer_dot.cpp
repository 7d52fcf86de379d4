// Integer dot products of packed weight blocks with int16 activations: the portable kernels and
// the SIMD kernels of this build against a double-precision sum over the decoded blocks, and the
// CPU matmul's decode path against float products.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "flow2/quant.h"
#include "quant/int16_activations.h"
#include "quant/integer_dot.h"

namespace flow2 {
namespace {

constexpr DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K};

void put_half(uint8_t* bytes, float value) {
  const uint16_t bits = f32_to_f16(value);
  std::memcpy(bytes, &bits, 2);
}

// Random block bytes with sane fp16 scales (random bytes there could be inf or NaN).
std::vector<uint8_t> random_row(DType dtype, size_t count, std::mt19937& rng) {
  const size_t block_bytes = dtype_bytes(dtype, dtype_block_elements(dtype));
  std::vector<uint8_t> row(dtype_bytes(dtype, count));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (auto& b : row) b = static_cast<uint8_t>(byte(rng));
  for (size_t offset = 0; offset < row.size(); offset += block_bytes) {
    uint8_t* block = row.data() + offset;
    switch (dtype) {
      case DType::Q6_K:
        put_half(block + 208, scale(rng));
        break;
      case DType::Q4_1:
      case DType::Q4_K:
      case DType::Q5_K:
        put_half(block, scale(rng));
        put_half(block + 2, (dtype == DType::Q4_1 ? -4.0f : 1.0f) * scale(rng));
        break;
      default:
        put_half(block, scale(rng));
    }
  }
  return row;
}

std::vector<float> random_vector(size_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(count);
  for (auto& v : x) v = normal(rng);
  x[count / 3] = 9.0f;  // an outlier, as activations have
  return x;
}

// Sum of decoded weights times the dequantized activations, in double, and the sum of
// magnitudes that float rounding scales with.
std::pair<double, double> reference_dot(DType dtype, const std::vector<uint8_t>& row,
                                        const Int16Row& x, size_t count) {
  std::vector<float> weights(count);
  dequantize_blocks(dtype, row.data(), count, weights.data());
  double sum = 0.0, magnitude = 0.0;
  for (size_t j = 0; j < count; ++j) {
    const double value = static_cast<double>(x.scales[j / 32]) * x.values[j];
    sum += weights[j] * value;
    magnitude += std::fabs(weights[j] * value);
  }
  return {sum, magnitude};
}

TEST(IntegerDot, ActivationsWithinHalfAStep) {
  std::mt19937 rng(1);
  const auto x = random_vector(256, rng);
  Int16Activations activations;
  activations.quantize(x.data(), 2, 128);
  for (size_t row = 0; row < 2; ++row) {
    const Int16Row q = activations.row(row);
    for (size_t b = 0; b < 4; ++b) {
      int sum = 0;
      float largest = 0.0f;
      for (size_t j = 0; j < 32; ++j) {
        const float value = x[row * 128 + b * 32 + j];
        largest = std::max(largest, std::fabs(value));
        EXPECT_LE(std::fabs(value - q.scales[b] * q.values[b * 32 + j]), 0.5001f * q.scales[b]);
        EXPECT_LE(std::abs(q.values[b * 32 + j]), 32767);
        sum += q.values[b * 32 + j];
      }
      EXPECT_FLOAT_EQ(q.scales[b], largest / 32767.0f);
      EXPECT_FLOAT_EQ(q.sums[b], q.scales[b] * sum);
    }
  }
}

TEST(IntegerDot, ZeroBlockHasZeroScale) {
  std::vector<float> x(32, 0.0f);
  Int16Activations activations;
  activations.quantize(x.data(), 1, 32);
  EXPECT_EQ(activations.row(0).scales[0], 0.0f);
  EXPECT_EQ(activations.row(0).sums[0], 0.0f);
}

void expect_kernel_matches_reference(float (*kernel)(DType, const void*, const Int16Row&, size_t)) {
  std::mt19937 rng(7);
  const size_t count = 1024;
  for (DType dtype : kTypes) {
    for (int trial = 0; trial < 20; ++trial) {
      const auto row = random_row(dtype, count, rng);
      const auto x = random_vector(count, rng);
      Int16Activations activations;
      activations.quantize(x.data(), 1, count);
      const Int16Row q = activations.row(0);
      const auto [expected, magnitude] = reference_dot(dtype, row, q, count);
      const double got = kernel(dtype, row.data(), q, count);
      EXPECT_NEAR(got, expected, 2e-6 * magnitude + 1e-6)
          << dtype_name(dtype) << " trial " << trial;
    }
  }
}

TEST(IntegerDot, PortableKernelsMatchDecodedBlocks) {
  expect_kernel_matches_reference(integer_row_dot_portable);
}

TEST(IntegerDot, SimdKernelsMatchDecodedBlocks) {
  if (std::string(integer_dot_kernel()) == "portable") {
    GTEST_SKIP() << "this build has no SIMD integer dot products (not compiled for AVX2)";
  }
  expect_kernel_matches_reference(integer_row_dot);
}

TEST(IntegerDot, ExtremeCodesDoNotSaturate) {
  // All codes at their largest magnitude with activations at +-32767: the int32 lanes reach
  // their largest sums.
  const size_t count = 256;
  std::vector<float> x(count);
  for (size_t j = 0; j < count; ++j) x[j] = (j % 3 == 0) ? -1.0f : 1.0f;
  Int16Activations activations;
  activations.quantize(x.data(), 1, count);
  for (DType dtype : kTypes) {
    std::vector<uint8_t> row(dtype_bytes(dtype, count), 0xff);
    if (dtype == DType::Q8_0) {
      for (size_t b = 0; b < count / 32; ++b) {
        std::memset(row.data() + b * 34 + 2, 0x80, 32);  // -128
        put_half(row.data() + b * 34, 1.0f);
      }
    } else if (dtype == DType::Q6_K) {
      put_half(row.data() + 208, 1.0f);
    } else {
      const size_t block_bytes = dtype_bytes(dtype, dtype_block_elements(dtype));
      for (size_t offset = 0; offset < row.size(); offset += block_bytes) {
        put_half(row.data() + offset, 1.0f);
        put_half(row.data() + offset + 2, 0.5f);
      }
    }
    const auto [expected, magnitude] = reference_dot(dtype, row, activations.row(0), count);
    EXPECT_NEAR(integer_row_dot(dtype, row.data(), activations.row(0), count), expected,
                1e-6 * magnitude)
        << dtype_name(dtype) << " with kernel " << integer_dot_kernel();
  }
}

}  // namespace
}  // namespace flow2
