// Encoding into the ggml block formats. The 32-element types use the rounding of ggml's
// reference quantizers; the 256-element K types (Q4_K, Q5_K, Q6_K) are flow2's own: every
// sub-block range is covered without clipping, so each element is off by at most half of its
// sub-block's effective step (see encode_k_asymmetric and encode_q6_k for the bound).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "flow2/error.h"
#include "flow2/quant.h"

namespace flow2 {
namespace {

void store_half(uint8_t* bytes, float value) {
  uint16_t bits = f32_to_f16(value);
  std::memcpy(bytes, &bits, 2);
}

// Q8_0: d = max|x| / 127, q = round(x / d).
void encode_q8_0(const float* x, uint8_t* block) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::abs(x[j]));
  const float d = amax / 127.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(block, d);
  auto* q = reinterpret_cast<int8_t*>(block + 2);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(std::lround(x[j] * inverse));
}

// Q4_0: the value of largest magnitude maps to -8, d = that value / -8.
void encode_q4_0(const float* x, uint8_t* block) {
  float amax = 0.0f, extreme = 0.0f;
  for (int j = 0; j < 32; ++j) {
    if (std::abs(x[j]) > amax) amax = std::abs(x[j]), extreme = x[j];
  }
  const float d = extreme / -8.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(block, d);
  uint8_t* q = block + 2;
  for (int j = 0; j < 16; ++j) {
    auto nibble = [&](float value) {
      return static_cast<uint8_t>(std::min(15, static_cast<int>(value * inverse + 8.5f)));
    };
    q[j] = nibble(x[j]) | static_cast<uint8_t>(nibble(x[j + 16]) << 4);
  }
}

// Q4_1: minimum m and step d = (max - min) / 15.
void encode_q4_1(const float* x, uint8_t* block) {
  float low = x[0], high = x[0];
  for (int j = 1; j < 32; ++j) low = std::min(low, x[j]), high = std::max(high, x[j]);
  const float d = (high - low) / 15.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(block, d);
  store_half(block + 2, low);
  uint8_t* q = block + 4;
  for (int j = 0; j < 16; ++j) {
    auto nibble = [&](float value) {
      return static_cast<uint8_t>(std::min(15, static_cast<int>((value - low) * inverse + 0.5f)));
    };
    q[j] = nibble(x[j]) | static_cast<uint8_t>(nibble(x[j + 16]) << 4);
  }
}

// --- K types --------------------------------------------------------------------------------

// The smallest f16 value that is >= `value` (value >= 0 and finite in f16): scales stored this
// way never shrink, so the ranges they must cover stay covered.
float store_half_up(uint8_t* bytes, float value) {
  uint16_t bits = f32_to_f16(value);
  if (f16_to_f32(bits) < value && bits < 0x7bff) ++bits;  // positive: next bit pattern is larger
  std::memcpy(bytes, &bits, 2);
  return f16_to_f32(bits);
}

// The smallest integer n in [0, limit] with n * unit >= value (value >= 0).
int ceil_multiple(float value, float unit, int limit) {
  if (unit <= 0.0f || value <= 0.0f) return 0;
  int n = static_cast<int>(std::ceil(value / unit));
  while (n > 0 && (n - 1) * unit >= value) --n;  // guard the division's rounding both ways
  while (n < limit && n * unit < value) ++n;
  return std::clamp(n, 0, limit);
}

// Packs eight 6-bit scales and minimums into the 12 bytes the decoder's scale_and_min reads.
void pack_k_scales(const int scale[8], const int minimum[8], uint8_t* bytes) {
  for (int i = 0; i < 4; ++i) {
    bytes[i] = static_cast<uint8_t>(scale[i] | ((scale[4 + i] >> 4) << 6));
    bytes[4 + i] = static_cast<uint8_t>(minimum[i] | ((minimum[4 + i] >> 4) << 6));
    bytes[8 + i] = static_cast<uint8_t>((scale[4 + i] & 0x0f) | ((minimum[4 + i] & 0x0f) << 4));
  }
}

// Q4_K (levels = 15) and Q5_K (levels = 31): x ~ d * sc * q - dmin * mn over 8 sub-blocks of 32.
// For sub-block j with lo = min(0, min x) and hi = max x:
//   1. mn_j = ceil(-lo / dmin) with dmin = f16-up(max(-lo) / 63), so the offset dmin * mn_j is
//      at or below lo (by less than one dmin);
//   2. the wanted step is (hi + dmin * mn_j) / levels and sc_j = ceil(step / d) with
//      d = f16-up(max step / 63), so the effective step d * sc_j covers [offset, hi];
//   3. q = round((x + dmin * mn_j) / (d * sc_j)) with the stored (effective) scale and offset.
// Nothing is clipped, so |x - x'| <= d * sc_j / 2 < ((hi - lo + dmin) / levels + d) / 2.
void encode_k_asymmetric(const float* x, uint8_t* block, int levels) {
  float offset_wanted[8], high[8], largest_offset = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float low = 0.0f, top = x[j * 32];
    for (int l = 0; l < 32; ++l)
      low = std::min(low, x[j * 32 + l]), top = std::max(top, x[j * 32 + l]);
    offset_wanted[j] = -low;
    high[j] = top;
    largest_offset = std::max(largest_offset, -low);
  }
  const float dmin = store_half_up(block + 2, largest_offset / 63.0f);
  int minimum[8], scale[8];
  float offset[8], step_wanted[8], largest_step = 0.0f;
  for (int j = 0; j < 8; ++j) {
    minimum[j] = ceil_multiple(offset_wanted[j], dmin, 63);
    offset[j] = dmin * minimum[j];
    step_wanted[j] = std::max(0.0f, (high[j] + offset[j]) / levels);
    largest_step = std::max(largest_step, step_wanted[j]);
  }
  const float d = store_half_up(block, largest_step / 63.0f);
  for (int j = 0; j < 8; ++j) scale[j] = ceil_multiple(step_wanted[j], d, 63);
  pack_k_scales(scale, minimum, block + 4);

  const bool five_bits = levels == 31;
  uint8_t* high_bits = block + 16;
  uint8_t* q = block + (five_bits ? 48 : 16);
  if (five_bits) std::memset(high_bits, 0, 32);
  for (int j = 0; j < 8; ++j) {
    // The decoder computes d * sc * q - dmin * mn in float: use exactly those products.
    const float step = d * scale[j];
    const float inverse = step > 0.0f ? 1.0f / step : 0.0f;
    const int pair = j / 2;
    const bool upper = j % 2 == 1;
    for (int l = 0; l < 32; ++l) {
      int value = std::clamp(static_cast<int>(std::lround((x[j * 32 + l] + offset[j]) * inverse)),
                             0, levels);
      uint8_t& byte = q[pair * 32 + l];
      if (!upper) byte = 0;
      byte |= static_cast<uint8_t>((value & 0x0f) << (upper ? 4 : 0));
      if (value & 16) high_bits[l] |= static_cast<uint8_t>(1 << j);
    }
  }
}

void encode_q4_k(const float* x, uint8_t* block) {
  encode_k_asymmetric(x, block, 15);
}
void encode_q5_k(const float* x, uint8_t* block) {
  encode_k_asymmetric(x, block, 31);
}

// Q6_K: x ~ d * sc_j * (q - 32), q in 0..63, 16 sub-blocks of 16 with int8 sc_j. Sub-block j
// needs a step s_j with 31 s_j >= max x and 32 s_j >= -min x, or the mirror image with a
// negative scale; the smaller of the two is used. d = f16-up(max s_j / 127) and
// |sc_j| = ceil(s_j / d) <= 127, so nothing is clipped and
// |x - x'| <= |d * sc_j| / 2 < (max|x|_j / 31 + d) / 2.
void encode_q6_k(const float* x, uint8_t* block) {
  float step_wanted[16], largest_step = 0.0f;
  bool negative[16];
  for (int j = 0; j < 16; ++j) {
    float positive_extent = 0.0f, negative_extent = 0.0f;
    for (int l = 0; l < 16; ++l) {
      positive_extent = std::max(positive_extent, x[j * 16 + l]);
      negative_extent = std::max(negative_extent, -x[j * 16 + l]);
    }
    const float plain = std::max(positive_extent / 31.0f, negative_extent / 32.0f);
    const float mirrored = std::max(negative_extent / 31.0f, positive_extent / 32.0f);
    negative[j] = mirrored < plain;
    step_wanted[j] = std::min(plain, mirrored);
    largest_step = std::max(largest_step, step_wanted[j]);
  }
  const float d = store_half_up(block + 208, largest_step / 127.0f);
  auto* scales = reinterpret_cast<int8_t*>(block + 192);
  uint8_t* low = block;
  uint8_t* high = block + 128;
  std::memset(block, 0, 192);
  for (int j = 0; j < 16; ++j) {
    const int magnitude = ceil_multiple(step_wanted[j], d, 127);
    scales[j] = static_cast<int8_t>(negative[j] ? -magnitude : magnitude);
    const float step = d * scales[j];
    const float inverse = step != 0.0f ? 1.0f / step : 0.0f;
    for (int l = 0; l < 16; ++l) {
      const int e = j * 16 + l;
      const int value = std::clamp(static_cast<int>(std::lround(x[e] * inverse)) + 32, 0, 63);
      // Element e: half e / 128; within it 32 k + i takes its low 4 bits from low byte i
      // (k = 0, 2) or i + 32 (k = 1, 3), low nibble for k < 2, and its top 2 bits from bits
      // 2k..2k+1 of high byte i.
      const int half_block = e / 128, k = (e % 128) / 32, i = e % 32;
      low[half_block * 64 + i + (k % 2) * 32] |=
          static_cast<uint8_t>((value & 0x0f) << (k >= 2 ? 4 : 0));
      high[half_block * 32 + i] |= static_cast<uint8_t>((value >> 4) << (2 * k));
    }
  }
}

}  // namespace

void quantize_blocks(DType dtype, const float* source, size_t count, void* blocks) {
  void (*encode)(const float*, uint8_t*) = nullptr;
  switch (dtype) {
    case DType::Q8_0:
      encode = encode_q8_0;
      break;
    case DType::Q4_0:
      encode = encode_q4_0;
      break;
    case DType::Q4_1:
      encode = encode_q4_1;
      break;
    case DType::Q4_K:
      encode = encode_q4_k;
      break;
    case DType::Q5_K:
      encode = encode_q5_k;
      break;
    case DType::Q6_K:
      encode = encode_q6_k;
      break;
    default:
      fail("quantizing to {} is not supported (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)",
           dtype_name(dtype));
  }
  const size_t block_elements = dtype_block_elements(dtype);
  check(count % block_elements == 0, "{}: {} elements are not whole blocks of {}",
        dtype_name(dtype), count, block_elements);
  auto* bytes = static_cast<uint8_t*>(blocks);
  for (size_t b = 0; b < count / block_elements; ++b) {
    encode(source + b * block_elements, bytes + b * dtype_size(dtype));
  }
}

}  // namespace flow2
