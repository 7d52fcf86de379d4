// Device helpers for split-layout rows (cuda_split_layout.h): a group's scale and offset, and
// the codes of a 16-byte piece as floats, exactly (decoding) or offset into [1, 2) (GEMV).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/cuda_split_layout.h"

namespace flow2::cuda {

// Loads of weight bytes that are read once (GEMV): through L1 without allocating lines there, so
// that the stream of codes does not evict x, which every warp reads again and again.
__device__ inline uint4 load_once(const uint4* address) {
  uint4 value;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
      : "l"(address));
  return value;
}
__device__ inline float2 load_once(const float2* address) {
  float2 value;
  asm("ld.global.nc.L1::no_allocate.v2.f32 {%0, %1}, [%2];"
      : "=f"(value.x), "=f"(value.y)
      : "l"(address));
  return value;
}
__device__ inline unsigned load_once(const unsigned* address) {
  unsigned value;
  asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(value) : "l"(address));
  return value;
}
__device__ inline unsigned short load_once(const unsigned short* address) {
  unsigned short value;
  asm("ld.global.nc.L1::no_allocate.u16 %0, [%1];" : "=h"(value) : "l"(address));
  return value;
}

// The loads of split_params: cached (__ldg) or load_once.
struct CachedLoad {
  template <typename T>
  __device__ T operator()(const T* address) const {
    return __ldg(address);
  }
};
struct StreamingLoad {
  template <typename T>
  __device__ T operator()(const T* address) const {
    return load_once(address);
  }
};

// (scale, offset) of group `group` of a row whose parameters start at `params`.
template <WeightFormat F, typename Load = CachedLoad>
__device__ inline float2 split_params(const uint8_t* params, int64_t group, Load load = {}) {
  if constexpr (F == WeightFormat::Q4_K) {
    return load(reinterpret_cast<const float2*>(params) + group);
  } else if constexpr (F == WeightFormat::Q4_1 || F == WeightFormat::Q4_A64) {
    const unsigned bits = load(reinterpret_cast<const unsigned*>(params) + group);
    return make_float2(__half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffff))),
                       __half2float(__ushort_as_half(static_cast<unsigned short>(bits >> 16))));
  } else {
    const unsigned short bits = load(reinterpret_cast<const unsigned short*>(params) + group);
    const float scale = __half2float(__ushort_as_half(bits));
    // Q4_0 codes are nibble - 8; -8 * scale is exact in float32.
    return make_float2(scale, F == WeightFormat::Q4_0 ? -8.0f * scale : 0.0f);
  }
}

// Word `index` (0..3) of a 16-byte piece; `index` is a constant once loops are unrolled.
__device__ inline uint32_t piece_word(const uint4& piece, int index) {
  return index == 0 ? piece.x : index == 1 ? piece.y : index == 2 ? piece.z : piece.w;
}

// Code `index` of a 32-bit word (element `index` of the word's 8 4-bit or 4 8-bit elements),
// exactly as a float: 4-bit codes are 0..15, 8-bit codes -128..127. Exponent bits over the
// integer (2^23 + c) and a subtraction convert at full rate; the integer conversion
// instruction runs at a quarter of it.
template <int kBits>
__device__ inline float code_value(uint32_t word, int index) {
  const uint32_t code = (word >> (kBits * index)) & ((1u << kBits) - 1);
  if constexpr (kBits == 8) {
    return __uint_as_float(0x4b000000u | (code ^ 0x80u)) - 8388736.0f;  // 2^23 + 128
  } else {
    return __uint_as_float(0x4b000000u | code) - 8388608.0f;  // 2^23
  }
}

// The GEMV's form of code `index`: u = 1 + c / 2^kBits in [1, 2), c the 4-bit code or the 8-bit
// code + 128, built by moving c into the top mantissa bits (a shift and a mask-or, where an
// exact value takes a third instruction). sum(q * x) = 2^kBits * sum(u * x) - (2^kBits + bias) *
// sum(x) with bias 0 (4-bit) or 128 (8-bit): for 8-bit codes kernels pass `word` with the top
// bit of every byte flipped (two's complement to code + 128). u * x rounds to 2^-24 of |x|, as
// float32 products of x do anyway.
// `mask` is code_unit_mask<kBits>() held in a register (see opaque).
template <int kBits>
__device__ inline float code_unit(uint32_t word, int index, uint32_t mask) {
  constexpr int kTop = 23 - kBits;  // mantissa bit of the code's lowest bit
  const int shift = kTop - kBits * index;
  const uint32_t moved = shift >= 0 ? word << shift : word >> -shift;
  return __uint_as_float(0x3f800000u | (moved & mask));
}

template <int kBits>
constexpr uint32_t code_unit_mask() {
  return ((1u << kBits) - 1) << (23 - kBits);
}

// `value` in a register the compiler does not know the contents of. A mask-or of two constants,
// (a & K1) | K2, is two LOP3 instructions (one immediate each); with K1 in a register it is one.
__device__ inline uint32_t opaque(uint32_t value) {
  uint32_t result;
  asm("mov.b32 %0, %1;" : "=r"(result) : "r"(value));
  return result;
}

}  // namespace flow2::cuda
