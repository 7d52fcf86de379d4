// ggml block formats: known-answer blocks assembled by hand from the format description,
// decodings of random blocks compared with gguf-py (tests/data/quant, made by
// tests/generators/gen_quant_blocks.py), and quantize -> dequantize round trips within the
// format's error bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

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

}  // namespace
}  // namespace flow2
