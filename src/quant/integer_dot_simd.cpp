// AVX2 / AVX-512 VNNI versions of the integer dot products in integer_dot_portable.cpp (same
// block arithmetic, tested against it). Weight codes widen to int16 and meet the int16
// activations in madd (AVX2) or dpwssd (VNNI): 16 multiply-adds per instruction into int32.
#include "quant/integer_dot_simd.h"

#ifdef FLOW2_SIMD_INTEGER_DOT

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/k_scales.h"

namespace flow2 {
namespace {

float half(const uint8_t* bytes) {
  uint16_t bits;
  std::memcpy(&bits, bytes, 2);
#ifdef __F16C__
  return _cvtsh_ss(bits);
#else
  return f16_to_f32(bits);
#endif
}

inline __m256i load16(const int16_t* values) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values));
}

inline __m128i load_bytes16(const uint8_t* bytes) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
}

inline __m256i load_bytes32(const uint8_t* bytes) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes));
}

// acc + pairwise products of 16 int16 codes with 16 int16 activations, summed into 8 lanes.
inline __m256i multiply_add(__m256i acc, __m256i codes, __m256i x) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpwssd_epi32(acc, codes, x);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(codes, x));
#endif
}

// Lane sums of codes * x over a block of 32 codes given as bytes 0-15 and 16-31.
inline __m256i block_products(__m128i low_bytes, __m128i high_bytes, const int16_t* x) {
  __m256i acc = multiply_add(_mm256_setzero_si256(), _mm256_cvtepu8_epi16(low_bytes), load16(x));
  return multiply_add(acc, _mm256_cvtepu8_epi16(high_bytes), load16(x + 16));
}

inline __m256i block_products(__m256i codes, const int16_t* x) {
  return block_products(_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1), x);
}

inline float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

// acc += products * scale, the products' lanes converted to float.
inline __m256 scaled_add(__m256i products, float scale, __m256 acc) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), _mm256_set1_ps(scale), acc);
}

float dot_q8_0(const uint8_t* block, const Int16Row& x, size_t blocks) {
  __m256 acc = _mm256_setzero_ps();
  for (size_t b = 0; b < blocks; ++b, block += 34) {
    const int16_t* xq = x.values + b * 32;
    __m256i products = multiply_add(_mm256_setzero_si256(),
                                    _mm256_cvtepi8_epi16(load_bytes16(block + 2)), load16(xq));
    products =
        multiply_add(products, _mm256_cvtepi8_epi16(load_bytes16(block + 18)), load16(xq + 16));
    acc = scaled_add(products, half(block) * x.scales[b], acc);
  }
  return horizontal_sum(acc);
}

// Q4_0 and Q4_1: 16 bytes of nibble pairs, low nibbles elements 0-15, high nibbles 16-31.
inline __m256i nibble_block_products(const uint8_t* q, const int16_t* x) {
  const __m128i raw = load_bytes16(q);
  const __m128i mask = _mm_set1_epi8(0x0f);
  return block_products(_mm_and_si128(raw, mask), _mm_and_si128(_mm_srli_epi16(raw, 4), mask), x);
}

float dot_q4_0(const uint8_t* block, const Int16Row& x, size_t blocks) {
  __m256 acc = _mm256_setzero_ps();
  float offsets = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += 18) {
    const float d = half(block);
    acc = scaled_add(nibble_block_products(block + 2, x.values + b * 32), d * x.scales[b], acc);
    offsets += d * x.sums[b];
  }
  return horizontal_sum(acc) - 8.0f * offsets;
}

float dot_q4_1(const uint8_t* block, const Int16Row& x, size_t blocks) {
  __m256 acc = _mm256_setzero_ps();
  float minimums = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += 20) {
    acc = scaled_add(nibble_block_products(block + 4, x.values + b * 32), half(block) * x.scales[b],
                     acc);
    minimums += half(block + 2) * x.sums[b];
  }
  return horizontal_sum(acc) + minimums;
}

float dot_k4_k5(const uint8_t* block, const Int16Row& x, size_t blocks, bool five_bits) {
  const size_t block_bytes = five_bits ? 176 : 144;
  const __m256i low_mask = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  float minimums = 0.0f;
  for (size_t b = 0; b < blocks; ++b, block += block_bytes) {
    const float d = half(block), dmin = half(block + 2);
    const uint8_t* scales = block + 4;
    const __m256i high_bits = five_bits ? load_bytes32(block + 16) : _mm256_setzero_si256();
    const uint8_t* q = block + (five_bits ? 48 : 16);
    for (int pair = 0; pair < 4; ++pair) {
      const __m256i raw = load_bytes32(q + 32 * pair);
      __m256i codes[2] = {_mm256_and_si256(raw, low_mask),
                          _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_mask)};
      for (int side = 0; side < 2; ++side) {
        const int sub = 2 * pair + side;
        if (five_bits) {
          const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << sub));
          const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(high_bits, bit), bit);
          codes[side] = _mm256_or_si256(codes[side], _mm256_and_si256(set, _mm256_set1_epi8(16)));
        }
        int scale, minimum;
        k_scale_and_min(sub, scales, &scale, &minimum);
        const size_t a = b * 8 + sub;
        acc = scaled_add(block_products(codes[side], x.values + a * 32), d * scale * x.scales[a],
                         acc);
        minimums += dmin * minimum * x.sums[a];
      }
    }
  }
  return horizontal_sum(acc) - minimums;
}

float dot_q6_k(const uint8_t* block, const Int16Row& x, size_t blocks) {
  const __m256i low_mask = _mm256_set1_epi8(0x0f);
  const __m256i two_bits = _mm256_set1_epi8(3);
  const __m256i offset = _mm256_set1_epi16(32);
  __m256 acc = _mm256_setzero_ps();
  for (size_t b = 0; b < blocks; ++b, block += 210) {
    const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
    const float d = half(block + 208);
    for (int half_block = 0; half_block < 2; ++half_block) {
      const __m256i low[2] = {load_bytes32(block + 64 * half_block),
                              load_bytes32(block + 64 * half_block + 32)};
      const __m256i high = load_bytes32(block + 128 + 32 * half_block);
      for (int group = 0; group < 4; ++group) {
        const __m256i low_bits =
            _mm256_and_si256(_mm256_srli_epi16(low[group % 2], 4 * (group / 2)), low_mask);
        const __m256i top_bits = _mm256_and_si256(_mm256_srli_epi16(high, 2 * group), two_bits);
        const __m256i codes = _mm256_or_si256(low_bits, _mm256_slli_epi16(top_bits, 4));
        const size_t a = b * 8 + half_block * 4 + group;
        const int16_t* xq = x.values + a * 32;
        // (code - 32) * x for each 16 elements, times that half's int8 scale.
        const __m256i first =
            _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(codes)), offset);
        const __m256i second =
            _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(codes, 1)), offset);
        const int8_t* group_scales = scales + 8 * half_block + 2 * group;
        const __m256i products = _mm256_add_epi32(
            _mm256_mullo_epi32(multiply_add(_mm256_setzero_si256(), first, load16(xq)),
                               _mm256_set1_epi32(group_scales[0])),
            _mm256_mullo_epi32(multiply_add(_mm256_setzero_si256(), second, load16(xq + 16)),
                               _mm256_set1_epi32(group_scales[1])));
        acc = scaled_add(products, d * x.scales[a], acc);
      }
    }
  }
  return horizontal_sum(acc);
}

}  // namespace

float integer_row_dot_simd(DType dtype, const void* row, const Int16Row& x, size_t count) {
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

}  // namespace flow2

#endif
