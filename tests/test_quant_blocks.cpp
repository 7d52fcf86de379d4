// ggml block formats: known-answer blocks assembled by hand from the format description,
// decodings of random blocks compared with gguf-py (tests/data/quant, made by
// tests/generators/gen_quant_blocks.py), and quantize -> dequantize round trips within the
// format's error bound.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <random>

#include "flow2/error.h"
#include "flow2/quant.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2 {
namespace {

void put_half(std::vector<uint8_t>& block, size_t offset, float value) {
  uint16_t bits = f32_to_f16(value);
  std::memcpy(block.data() + offset, &bits, 2);
}

std::vector<float> decode(DType dtype, const std::vector<uint8_t>& block) {
  std::vector<float> out(dtype_block_elements(dtype));
  dequantize_blocks(dtype, block.data(), out.size(), out.data());
  return out;
}

TEST(QuantBlocks, Q8_0KnownAnswer) {
  std::vector<uint8_t> block(34);
  put_half(block, 0, 0.5f);
  for (int j = 0; j < 32; ++j)
    block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128));
  auto values = decode(DType::Q8_0, block);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(values[j], 0.5f * (j * 8 - 128)) << j;
}

TEST(QuantBlocks, Q4_0AndQ4_1KnownAnswer) {
  // Byte j holds element j in its low nibble and element j + 16 in its high nibble.
  std::vector<uint8_t> q40(18);
  put_half(q40, 0, 2.0f);
  for (int j = 0; j < 16; ++j) q40[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto values = decode(DType::Q4_0, q40);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(values[j], 2.0f * (j - 8));
    EXPECT_EQ(values[j + 16], 2.0f * ((15 - j) - 8));
  }
  std::vector<uint8_t> q41(20);
  put_half(q41, 0, 0.25f);
  put_half(q41, 2, -1.0f);
  for (int j = 0; j < 16; ++j) q41[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  values = decode(DType::Q4_1, q41);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(values[j], 0.25f * j - 1.0f);
    EXPECT_EQ(values[j + 16], 0.25f * (15 - j) - 1.0f);
  }
}

// Packs the eight 6-bit scales and minimums of a Q4_K/Q5_K block into its 12 bytes: bytes 0-3
// hold scales 0-3 and bytes 4-7 minimums 0-3 in their low 6 bits; bytes 8-11 hold the low 4 bits
// of scale 4+i (low nibble) and minimum 4+i (high nibble); the top 2 bits of scale 4+i sit in
// bits 6-7 of byte i, those of minimum 4+i in bits 6-7 of byte 4+i.
std::array<uint8_t, 12> pack_k_scales(const int scale[8], const int minimum[8]) {
  std::array<uint8_t, 12> bytes{};
  for (int i = 0; i < 4; ++i) {
    bytes[i] = static_cast<uint8_t>(scale[i] | ((scale[4 + i] >> 4) << 6));
    bytes[4 + i] = static_cast<uint8_t>(minimum[i] | ((minimum[4 + i] >> 4) << 6));
    bytes[8 + i] = static_cast<uint8_t>((scale[4 + i] & 0x0f) | ((minimum[4 + i] & 0x0f) << 4));
  }
  return bytes;
}

const int kScales[8] = {1, 7, 13, 63, 17, 33, 48, 62};
const int kMinimums[8] = {0, 5, 31, 2, 20, 63, 40, 9};

// Element e of a K block: sub-block e / 32; within each 64 elements the first 32 are the low
// nibbles of 32 bytes, the next 32 their high nibbles.
TEST(QuantBlocks, Q4_KKnownAnswer) {
  std::vector<uint8_t> block(144);
  put_half(block, 0, 0.5f);
  put_half(block, 2, 0.25f);
  auto scales = pack_k_scales(kScales, kMinimums);
  std::copy(scales.begin(), scales.end(), block.begin() + 4);
  auto nibble = [](int e) { return (e * 7 + 3) % 16; };
  for (int pair = 0; pair < 4; ++pair) {
    for (int l = 0; l < 32; ++l) {
      block[16 + pair * 32 + l] =
          static_cast<uint8_t>(nibble(pair * 64 + l) | (nibble(pair * 64 + 32 + l) << 4));
    }
  }
  auto values = decode(DType::Q4_K, block);
  for (int e = 0; e < 256; ++e) {
    int sub = e / 32;
    EXPECT_FLOAT_EQ(values[e], 0.5f * kScales[sub] * nibble(e) - 0.25f * kMinimums[sub]) << e;
  }
}

// Q5_K: the fifth bit of element e (sub-block s = e / 32, position l = e % 32) is bit s of
// qh[l].
TEST(QuantBlocks, Q5_KKnownAnswer) {
  std::vector<uint8_t> block(176);
  put_half(block, 0, 0.125f);
  put_half(block, 2, 1.0f);
  auto scales = pack_k_scales(kScales, kMinimums);
  std::copy(scales.begin(), scales.end(), block.begin() + 4);
  auto value5 = [](int e) { return (e * 11 + 5) % 32; };
  for (int e = 0; e < 256; ++e) {
    int sub = e / 32, l = e % 32, pair = e / 64;
    bool high_half = (e % 64) >= 32;
    uint8_t& byte = block[48 + pair * 32 + l];
    byte |= static_cast<uint8_t>((value5(e) & 0x0f) << (high_half ? 4 : 0));
    if (value5(e) & 16) block[16 + l] |= static_cast<uint8_t>(1 << sub);
  }
  auto values = decode(DType::Q5_K, block);
  for (int e = 0; e < 256; ++e) {
    int sub = e / 32;
    EXPECT_FLOAT_EQ(values[e], 0.125f * kScales[sub] * value5(e) - 1.0f * kMinimums[sub]) << e;
  }
}

// Q6_K: 6-bit values minus 32, 16 sub-blocks of 16 with int8 scales. In each half (128
// elements, 64 low bytes, 32 high bytes) element 32*k + l (k = 0..3, l = 0..31) takes its low
// 4 bits from low byte l (k = 0, 2) or l + 32 (k = 1, 3), low nibble for k < 2 and high nibble
// for k >= 2, and its top 2 bits from bits 2k..2k+1 of high byte l.
TEST(QuantBlocks, Q6_KKnownAnswer) {
  std::vector<uint8_t> block(210);
  const int8_t scale_of[16] = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 127, -128};
  std::memcpy(block.data() + 192, scale_of, 16);
  put_half(block, 208, 0.0625f);
  auto value6 = [](int e) { return (e * 13 + 1) % 64; };
  for (int e = 0; e < 256; ++e) {
    int half_block = e / 128, k = (e % 128) / 32, l = e % 32;
    uint8_t& low = block[half_block * 64 + l + (k % 2) * 32];
    low |= static_cast<uint8_t>((value6(e) & 0x0f) << (k >= 2 ? 4 : 0));
    block[128 + half_block * 32 + l] |= static_cast<uint8_t>((value6(e) >> 4) << (2 * k));
  }
  auto values = decode(DType::Q6_K, block);
  for (int e = 0; e < 256; ++e) {
    EXPECT_FLOAT_EQ(values[e], 0.0625f * scale_of[e / 16] * (value6(e) - 32)) << e;
  }
}

TEST(QuantBlocks, RandomBlocksMatchGgufPy) {
  auto file = SafetensorsFile::open(testing::data_path("quant/gguf_py_blocks.safetensors"));
  for (DType dtype :
       {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const std::string name(dtype_name(dtype));
    const HostTensor& blocks = file.get(name + ".blocks");
    std::vector<float> expected = file.get(name + ".values").to_f32();
    ASSERT_EQ(dtype_bytes(dtype, expected.size()), blocks.bytes.size()) << name;
    std::vector<float> values(expected.size());
    dequantize_blocks(dtype, blocks.bytes.data(), values.size(), values.data());
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_NEAR(values[i], expected[i], 1e-6 * (1 + std::abs(expected[i]))) << name << " " << i;
    }
  }
}

TEST(QuantBlocks, RoundTripsStayWithinTheStep) {
  std::vector<float> values = testing::random_values(32 * 64, 5, 2.0f);
  for (DType dtype : {DType::Q8_0, DType::Q4_0, DType::Q4_1}) {
    std::vector<uint8_t> blocks(dtype_bytes(dtype, values.size()));
    quantize_blocks(dtype, values.data(), values.size(), blocks.data());
    std::vector<float> decoded(values.size());
    dequantize_blocks(dtype, blocks.data(), decoded.size(), decoded.data());
    for (size_t b = 0; b < values.size() / 32; ++b) {
      float low = values[b * 32], high = low, amax = 0;
      for (int j = 0; j < 32; ++j) {
        float v = values[b * 32 + j];
        low = std::min(low, v), high = std::max(high, v), amax = std::max(amax, std::abs(v));
      }
      // Half a quantization step (plus the f16 rounding of the scale) bounds every error; Q4_0
      // maps the extreme to -8, so the opposite end (+8 steps) is clipped to +7: one full step.
      float step = dtype == DType::Q8_0   ? amax / 127
                   : dtype == DType::Q4_0 ? amax / 8
                                          : (high - low) / 15;
      float bound = (dtype == DType::Q4_0 ? 1.0f : 0.5f) * step + 2e-3f * amax + 1e-6f;
      for (int j = 0; j < 32; ++j) {
        size_t i = b * 32 + j;
        EXPECT_LE(std::abs(decoded[i] - values[i]), bound) << dtype_name(dtype) << " block " << b;
      }
    }
  }
}

// --- K-type encoders --------------------------------------------------------------------------

// Rows of 256 * 8 elements of different shapes, each a named case.
std::vector<std::pair<std::string, std::vector<float>>> k_cases() {
  const size_t n = 256 * 8;
  std::vector<std::pair<std::string, std::vector<float>>> cases;
  cases.emplace_back("normal", testing::random_values(n, 11, 1.5f));
  std::mt19937_64 rng(12);
  std::uniform_real_distribution<float> uniform(-3.0f, 5.0f);
  std::vector<float> values(n);
  for (auto& v : values) v = uniform(rng);
  cases.emplace_back("uniform", values);
  for (auto& v : values) v = std::abs(uniform(rng)) + 0.5f;  // all positive: the minimum is 0
  cases.emplace_back("positive", values);
  for (auto& v : values) v = -std::abs(uniform(rng)) - 2.0f;  // all negative
  cases.emplace_back("negative", values);
  values = testing::random_values(n, 13, 0.02f);  // small weights with a few large outliers
  for (size_t i = 7; i < n; i += 97) values[i] = (i % 2 ? 1.0f : -1.0f) * (3.0f + i % 5);
  cases.emplace_back("outliers", values);
  cases.emplace_back("zero", std::vector<float>(n, 0.0f));
  values.assign(n, 0.0f);  // constant rows of 256, positive and negative
  for (size_t b = 0; b < n / 256; ++b) {
    std::fill_n(values.begin() + b * 256, 256, (b % 2 ? -1.0f : 1.0f) * (0.25f + b));
  }
  cases.emplace_back("constant", values);
  values = testing::random_values(n, 14, 1.0f);  // sub-blocks of very different ranges
  for (size_t i = 0; i < n; ++i) values[i] *= std::pow(10.0f, static_cast<float>(i / 32 % 4) - 2);
  cases.emplace_back("mixed ranges", values);
  return cases;
}

std::vector<float> round_trip(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> blocks(dtype_bytes(dtype, values.size()));
  quantize_blocks(dtype, values.data(), values.size(), blocks.data());
  std::vector<float> decoded(values.size());
  dequantize_blocks(dtype, blocks.data(), decoded.size(), decoded.data());
  return decoded;
}

// An f16 scale stored rounded up exceeds its float value by at most a relative 2^-10 (normal
// numbers) or 2^-24 (subnormal ones).
float f16_up(float value) {
  return value * (1.0f + 1.0f / 1024) + 6e-8f;
}

// The error bound of each element of a 256-element block (ggml_quantize.cpp derives it):
//   Q4_K/Q5_K (L = 15/31 steps, sub-blocks of 32, lo = min(0, min x), hi = max x): the offset
//     exceeds -lo by less than dmin = f16_up(max(-lo) / 63), so the wanted step is at most
//     (hi - lo + dmin) / L; the 6-bit scale rounded up adds less than d = f16_up(max step / 63);
//     nothing is clipped, so |x - x'| <= (step + d) / 2.
//   Q6_K (sub-blocks of 16): the wanted step is at most max|x| / 31, the 8-bit scale rounded up
//     adds less than d = f16_up(max step / 127), and |x - x'| <= (step + d) / 2.
// Plus float rounding of the decoder's products: 1e-6 of the block's magnitude.
std::vector<float> k_bounds(DType dtype, const float* x) {
  std::vector<float> bound(256);
  float amax = 0.0f;
  for (int e = 0; e < 256; ++e) amax = std::max(amax, std::abs(x[e]));
  const float rounding = 1e-6f * amax + 1e-12f;
  if (dtype == DType::Q6_K) {
    float step[16], largest = 0.0f;
    for (int j = 0; j < 16; ++j) {
      float extent = 0.0f;
      for (int l = 0; l < 16; ++l) extent = std::max(extent, std::abs(x[j * 16 + l]));
      step[j] = extent / 31.0f;
      largest = std::max(largest, step[j]);
    }
    const float d = f16_up(largest / 127.0f);
    for (int e = 0; e < 256; ++e) bound[e] = 0.5f * (step[e / 16] + d) + rounding;
    return bound;
  }
  const float levels = dtype == DType::Q4_K ? 15.0f : 31.0f;
  float low[8], high[8], largest_offset = 0.0f;
  for (int j = 0; j < 8; ++j) {
    low[j] = 0.0f, high[j] = x[j * 32];
    for (int l = 0; l < 32; ++l) {
      low[j] = std::min(low[j], x[j * 32 + l]), high[j] = std::max(high[j], x[j * 32 + l]);
    }
    largest_offset = std::max(largest_offset, -low[j]);
  }
  const float dmin = f16_up(largest_offset / 63.0f);
  float step[8], largest = 0.0f;
  for (int j = 0; j < 8; ++j) {
    step[j] = (high[j] - low[j] + dmin) / levels;
    largest = std::max(largest, step[j]);
  }
  const float d = f16_up(largest / 63.0f);
  for (int e = 0; e < 256; ++e) bound[e] = 0.5f * (step[e / 32] + d) + rounding;
  return bound;
}

TEST(QuantBlocks, KRoundTripsStayWithinHalfTheEffectiveStep) {
  for (const auto& [name, values] : k_cases()) {
    for (DType dtype : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      std::vector<float> decoded = round_trip(dtype, values);
      for (size_t b = 0; b < values.size() / 256; ++b) {
        std::vector<float> bound = k_bounds(dtype, values.data() + b * 256);
        for (size_t e = 0; e < 256; ++e) {
          const size_t i = b * 256 + e;
          ASSERT_LE(std::abs(decoded[i] - values[i]), bound[e])
              << dtype_name(dtype) << " " << name << " element " << i << ": " << values[i] << " -> "
              << decoded[i];
        }
      }
      if (name == "zero") {
        for (float v : decoded) ASSERT_EQ(v, 0.0f) << dtype_name(dtype);
      }
    }
  }
}

double rms_error(DType dtype, const std::vector<float>& values) {
  std::vector<float> decoded = round_trip(dtype, values);
  double sum = 0.0;
  for (size_t i = 0; i < values.size(); ++i) sum += std::pow(decoded[i] - values[i], 2.0);
  return std::sqrt(sum / static_cast<double>(values.size()));
}

// More bits, smaller errors: on Gaussian weights Q8_0 < Q6_K < Q5_K < Q4_K < Q4_0, and Q4_K
// (6-bit scales and minimums per 32) stays close to Q4_1 (f16 scale and minimum per 32).
TEST(QuantBlocks, KRmsErrorsOrderByBits) {
  std::vector<float> values = testing::random_values(256 * 64, 21, 1.0f);
  const double q8_0 = rms_error(DType::Q8_0, values), q6_k = rms_error(DType::Q6_K, values),
               q5_k = rms_error(DType::Q5_K, values), q4_k = rms_error(DType::Q4_K, values),
               q4_1 = rms_error(DType::Q4_1, values), q4_0 = rms_error(DType::Q4_0, values);
  RecordProperty("rms", fmt::format("Q8_0 {:.4f} Q6_K {:.4f} Q5_K {:.4f} Q4_K {:.4f} Q4_1 {:.4f} "
                                    "Q4_0 {:.4f}",
                                    q8_0, q6_k, q5_k, q4_k, q4_1, q4_0));
  EXPECT_LT(q8_0, q6_k);
  EXPECT_LT(q6_k, q5_k);
  EXPECT_LT(q5_k, q4_k);
  EXPECT_LT(q4_k, q4_0);
  EXPECT_LT(q4_k, 1.1 * q4_1);
  // Uniform steps of a unit Gaussian's range: about range / (2^bits - 1) / sqrt(12).
  EXPECT_LT(q6_k, 0.03);
  EXPECT_LT(q5_k, 0.06);
  EXPECT_LT(q4_k, 0.12);
}

// Decodes a K block by the layout the known-answer tests above spell out (not through
// dequantize_blocks), and checks every field the encoder wrote is in its range.
std::vector<float> decode_k_by_layout(DType dtype, const uint8_t* block) {
  auto half_at = [&](size_t offset) {
    uint16_t bits;
    std::memcpy(&bits, block + offset, 2);
    return f16_to_f32(bits);
  };
  std::vector<float> out(256);
  if (dtype == DType::Q6_K) {
    const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
    const float d = half_at(208);
    for (int e = 0; e < 256; ++e) {
      int half_block = e / 128, k = (e % 128) / 32, l = e % 32;
      int low = (block[half_block * 64 + l + (k % 2) * 32] >> (k >= 2 ? 4 : 0)) & 0x0f;
      int high = (block[128 + half_block * 32 + l] >> (2 * k)) & 3;
      EXPECT_NE(scales[e / 16], -128);
      out[e] = d * scales[e / 16] * ((low | (high << 4)) - 32);
    }
    return out;
  }
  const float d = half_at(0), dmin = half_at(2);
  EXPECT_GE(d, 0.0f);
  EXPECT_GE(dmin, 0.0f);
  const uint8_t* packed = block + 4;
  int scale[8], minimum[8];
  for (int i = 0; i < 4; ++i) {  // the inverse of pack_k_scales
    scale[i] = packed[i] & 63;
    minimum[i] = packed[4 + i] & 63;
    scale[4 + i] = (packed[8 + i] & 0x0f) | ((packed[i] >> 6) << 4);
    minimum[4 + i] = (packed[8 + i] >> 4) | ((packed[4 + i] >> 6) << 4);
  }
  const bool five = dtype == DType::Q5_K;
  for (int e = 0; e < 256; ++e) {
    int sub = e / 32, l = e % 32, pair = e / 64;
    bool high_half = (e % 64) >= 32;
    int value = (block[(five ? 48 : 16) + pair * 32 + l] >> (high_half ? 4 : 0)) & 0x0f;
    if (five && (block[16 + l] & (1 << sub))) value += 16;
    out[e] = d * scale[sub] * value - dmin * minimum[sub];
  }
  return out;
}

TEST(QuantBlocks, EncodedKBlocksDecodeAlikeByTheKnownAnswerLayout) {
  for (const auto& [name, values] : k_cases()) {
    for (DType dtype : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      std::vector<uint8_t> blocks(dtype_bytes(dtype, values.size()));
      quantize_blocks(dtype, values.data(), values.size(), blocks.data());
      std::vector<float> decoded(values.size());
      dequantize_blocks(dtype, blocks.data(), decoded.size(), decoded.data());
      for (size_t b = 0; b < values.size() / 256; ++b) {
        std::vector<float> expected =
            decode_k_by_layout(dtype, blocks.data() + b * dtype_size(dtype));
        for (size_t e = 0; e < 256; ++e) {
          ASSERT_EQ(decoded[b * 256 + e], expected[e]) << dtype_name(dtype) << " " << name;
        }
      }
    }
  }
}

TEST(QuantBlocks, KTypesNeedWholeSuperBlocks) {
  std::vector<float> values(32 * 9, 1.0f);
  std::vector<uint8_t> blocks(1024);
  EXPECT_THROW(quantize_blocks(DType::Q4_K, values.data(), values.size(), blocks.data()), Error);
  EXPECT_THROW(quantize_blocks(DType::F16, values.data(), 256, blocks.data()), Error);
}

}  // namespace
}  // namespace flow2
