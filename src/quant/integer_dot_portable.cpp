// Integer dot products in plain C++: per block, sum weight code * activation code in integers,
// then apply the weight and activation scales once. Offsets (Q4_0's 8) and minimums (Q4_1, K
// types) multiply the activation block's scaled sum instead of every element.
#include <cstdint>
#include <cstring>

#include "quant/integer_dot.h"
#include "quant/integer_dot_simd.h"
#include "quant/k_scales.h"

namespace flow2 {
namespace {

float half(const uint8_t* bytes) {
  uint16_t bits;
  std::memcpy(&bits, bytes, 2);
  return f16_to_f32(bits);
}

// Sum over a block of 32 of (low nibble of q[j]) * x[j] + (high nibble) * x[j + 16].
int nibble_pairs_dot(const uint8_t* q, const int16_t* x) {
  int sum = 0;
  for (int j = 0; j < 16; ++j) sum += (q[j] & 0x0f) * x[j] + (q[j] >> 4) * x[j + 16];
  return sum;
}

float dot_q8_0(const uint8_t* block, const Int16Row& x, size_t blocks) {
  float total = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += 34) {
    const auto* q = reinterpret_cast<const int8_t*>(block + 2);
    const int16_t* xq = x.values + b * 32;
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += q[j] * xq[j];
    total += half(block) * x.scales[b] * static_cast<float>(sum);
  }
  return total;
}

float dot_q4_0(const uint8_t* block, const Int16Row& x, size_t blocks) {
  float total = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += 18) {
    const int sum = nibble_pairs_dot(block + 2, x.values + b * 32);
    total += half(block) * (x.scales[b] * static_cast<float>(sum) - 8.0f * x.sums[b]);
  }
  return total;
}

float dot_q4_1(const uint8_t* block, const Int16Row& x, size_t blocks) {
  float total = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += 20) {
    const int sum = nibble_pairs_dot(block + 4, x.values + b * 32);
    total += half(block) * x.scales[b] * static_cast<float>(sum) + half(block + 2) * x.sums[b];
  }
  return total;
}

// Q4_K and Q5_K: codes of sub-block s are (q >> shift) & 15, plus 16 where its qh bit is set.
float dot_k4_k5(const uint8_t* block, const Int16Row& x, size_t blocks, bool five_bits) {
  const size_t block_bytes = five_bits ? 176 : 144;
  float total = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += block_bytes) {
    const float d = half(block), dmin = half(block + 2);
    const uint8_t* scales = block + 4;
    const uint8_t* high_bits = block + 16;
    const uint8_t* q = block + (five_bits ? 48 : 16);
    for (int sub = 0; sub < 8; ++sub) {
      int scale, minimum;
      k_scale_and_min(sub, scales, &scale, &minimum);
      const uint8_t* codes = q + 32 * (sub / 2);
      const int shift = 4 * (sub % 2);
      const size_t a = b * 8 + sub;  // activation block
      const int16_t* xq = x.values + a * 32;
      int sum = 0;
      for (int l = 0; l < 32; ++l) {
        int code = (codes[l] >> shift) & 0x0f;
        if (five_bits && (high_bits[l] >> sub & 1)) code += 16;
        sum += code * xq[l];
      }
      total += d * scale * x.scales[a] * static_cast<float>(sum) - dmin * minimum * x.sums[a];
    }
  }
  return total;
}

// Q6_K: group g (32 elements) of a 128-element half takes its low 4 bits from ql[l] (groups 0,
// 2) or ql[l + 32] (1, 3), low or high nibble (groups 0, 1 / 2, 3), and 2 bits from qh[l] at bit
// 2g; each 16 elements have their own int8 scale.
float dot_q6_k(const uint8_t* block, const Int16Row& x, size_t blocks) {
  float total = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += 210) {
    const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
    const float d = half(block + 208);
    for (int half_block = 0; half_block < 2; ++half_block) {
      const uint8_t* low = block + 64 * half_block;
      const uint8_t* high = block + 128 + 32 * half_block;
      for (int group = 0; group < 4; ++group) {
        const size_t a = b * 8 + half_block * 4 + group;
        const int16_t* xq = x.values + a * 32;
        const uint8_t* low_bytes = low + 32 * (group % 2);
        const int shift = 4 * (group / 2);
        int sums[2] = {0, 0};
        for (int l = 0; l < 32; ++l) {
          const int code =
              (((low_bytes[l] >> shift) & 0x0f) | (((high[l] >> (2 * group)) & 3) << 4));
          sums[l / 16] += (code - 32) * xq[l];
        }
        const int8_t* group_scales = scales + 8 * half_block + 2 * group;
        total += d * x.scales[a] *
                 static_cast<float>(int64_t{group_scales[0]} * sums[0] +
                                    int64_t{group_scales[1]} * sums[1]);
      }
    }
  }
  return total;
}

}  // namespace

bool has_integer_dot(DType dtype) {
  switch (dtype) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

float integer_row_dot_portable(DType dtype, const void* row, const Int16Row& x, size_t count) {
  const auto* block = static_cast<const uint8_t*>(row);
  switch (dtype) {
    case DType::Q8_0:
      return dot_q8_0(block, x, count / 32);
    case DType::Q4_0:
      return dot_q4_0(block, x, count / 32);
    case DType::Q4_1:
      return dot_q4_1(block, x, count / 32);
    case DType::Q4_K:
      return dot_k4_k5(block, x, count / 256, false);
    case DType::Q5_K:
      return dot_k4_k5(block, x, count / 256, true);
    case DType::Q6_K:
      return dot_q6_k(block, x, count / 256);
    default:
      return 0.0f;
  }
}

float integer_row_dot(DType dtype, const void* row, const Int16Row& x, size_t count) {
#ifdef FLOW2_SIMD_INTEGER_DOT
  return integer_row_dot_simd(dtype, row, x, count);
#else
  return integer_row_dot_portable(dtype, row, x, count);
#endif
}

const char* integer_dot_kernel() {
#ifdef FLOW2_SIMD_INTEGER_DOT
  return FLOW2_SIMD_INTEGER_DOT;
#else
  return "portable";
#endif
}

}  // namespace flow2
