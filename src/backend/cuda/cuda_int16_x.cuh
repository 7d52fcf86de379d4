// One row of x as int16 per group of 32 values, for integer dot products with 4-bit codes.
//
// d = max |x| / 32767 per group and x16 = round(x / d), exactly as the CPU backend's
// Int16Activations (int16_activations.cpp) rounds them: an error of at most d / 2 per value. A
// 32-bit word of split-layout codes holds 8 elements; lo = word & 0x0F0F0F0F has the even ones (0,
// 2, 4, 6) in its bytes, hi = (word >> 4) & 0x0F0F0F0F the odd ones. dp2a.lo multiplies the two
// int16 halves of its first operand (low half first) with bytes 0 and 1 of the second, dp2a.hi with
// bytes 2 and 3, adding to an int32. So the 8 x16 of a word are kept as one uint4 {(x0, x2), (x4,
// x6), (x1, x3), (x5, x7)}, consumed as lo(.x, lo), hi(.y, lo), lo(.z, hi), hi(.w, hi): a group's
// 32 products take 16 dp2a and 8 mask instructions where float codes take 96 instructions. The
// uint4s of 4 consecutive groups are interleaved by word (x16_word), because the 4 lanes of a GEMV
// slot read 4 consecutive groups at once: each such load is 64 contiguous bytes. k is a multiple of
// 128.
#pragma once

#include <cstdint>

namespace flow2::cuda {

constexpr int kInt16Group = 32;
constexpr int kInt16Max = 32767;

// uint4 index of word w (0..3) of group p.
__host__ __device__ constexpr int64_t x16_word(int64_t p, int w) {
  return (p >> 2) * 16 + w * 4 + (p & 3);
}
// int16 index of element e (0..31) of group p.
__host__ __device__ constexpr int64_t x16_index(int64_t p, int e) {
  const int i = e % 8;  // element within its word
  return x16_word(p, e / 8) * 8 + (i & 1) * 4 + (i >> 1);
}

// Shared memory for a staged row of x: k / 8 uint4 of x16, then k / 32 int2 of (d bits, sum).
constexpr int64_t staged_x16_bytes(int64_t k) {
  return k / 8 * 16 + k / kInt16Group * 8;
}

// c + a.lo * b.byte0 + a.hi * b.byte1 (lo) or with bytes 2 and 3 (hi): a a pair of signed int16,
// b unsigned bytes (codes 0..15).
__device__ inline int dp2a_lo(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp2a.lo.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ inline int dp2a_hi(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp2a.hi.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// acc + sum_j code_j * x16_j over one group of 4-bit codes; xw[w] the uint4 of word w. Exact:
// |sum| <= 15 * 32 * 32767 < 2^24.
__device__ inline int group_dot(const uint4& codes, const uint4 (&xw)[4], int acc) {
  const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const uint32_t lo = words[w] & 0x0F0F0F0Fu, hi = (words[w] >> 4) & 0x0F0F0F0Fu;
    acc = dp2a_lo(xw[w].x, lo, acc);
    acc = dp2a_hi(xw[w].y, lo, acc);
    acc = dp2a_lo(xw[w].z, hi, acc);
    acc = dp2a_hi(xw[w].w, hi, acc);
  }
  return acc;
}

// x16's scale for a group whose largest |x| is `largest`, and the code of `value` given the
// scale's inverse: as the CPU's Int16Activations, x times the rounded inverse of d, to nearest
// even, clamped (the largest value may round a hair past 32767), so both hold the same x16.
__device__ inline float x16_scale(float largest) {
  return largest / static_cast<float>(kInt16Max);
}
__device__ inline float x16_inverse(float d) {
  return d > 0.0f ? 1.0f / d : 0.0f;
}
__device__ inline int x16_code(float value, float inverse) {
  return max(-kInt16Max, min(__float2int_rn(__fmul_rn(value, inverse)), kInt16Max));
}

// One quad of a row (its values 4 quad .. 4 quad + 3 in v) into the staging at `staged` (shared or
// global memory, staged_x16_bytes(k)): the 8 neighbouring lanes that hold a group's quads call
// it together, as stage_x16 and the norms do.
__device__ inline void stage_quad_x16(const float4& v, int64_t quad, int64_t k, uint4* staged) {
  auto* x16 = reinterpret_cast<int16_t*>(staged);
  auto* meta = reinterpret_cast<int2*>(staged + k / 8);
  float largest = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
  for (int offset = 1; offset < 8; offset *= 2) {
    largest = fmaxf(largest, __shfl_xor_sync(0xffffffff, largest, offset));
  }
  const float d = x16_scale(largest);
  const float inverse = x16_inverse(d);
  const float values[4] = {v.x, v.y, v.z, v.w};
  int q[4];
#pragma unroll
  for (int c = 0; c < 4; ++c) q[c] = x16_code(values[c], inverse);
  int sum = (q[0] + q[1]) + (q[2] + q[3]);
#pragma unroll
  for (int offset = 1; offset < 8; offset *= 2) sum += __shfl_xor_sync(0xffffffff, sum, offset);
  const int64_t group = quad / 8;
  const int first = static_cast<int>(quad % 8) * 4;
#pragma unroll
  for (int c = 0; c < 4; ++c) x16[x16_index(group, first + c)] = static_cast<int16_t>(q[c]);
  if (first == 0) meta[group] = make_int2(__float_as_int(d), sum);
}

// The same for a group held one value a lane by a whole warp (lane e holding element e of group
// `group`): the same codes, scale and sum (a maximum and a sum of integers do not depend on
// their order).
__device__ inline void stage_lane_x16(float value, int64_t group, int64_t k, uint4* staged) {
  const int lane = threadIdx.x % 32;
  float largest = fabsf(value);
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    largest = fmaxf(largest, __shfl_xor_sync(0xffffffff, largest, offset));
  }
  const float d = x16_scale(largest);
  const int q = x16_code(value, x16_inverse(d));
  int sum = q;
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) sum += __shfl_xor_sync(0xffffffff, sum, offset);
  reinterpret_cast<int16_t*>(staged)[x16_index(group, lane)] = static_cast<int16_t>(q);
  if (lane == 0) reinterpret_cast<int2*>(staged + k / 8)[group] = make_int2(__float_as_int(d), sum);
}

// The staging's block: 256 threads, up to 16 float4 of x each.
constexpr int kStageThreads = 256;
constexpr int64_t kInt16MaxK = int64_t{4} * kStageThreads * 16;  // 16384

// The block's 256 threads quantize x[0, k) (k <= 1024 kStageQuads) into shared memory
// (staged_x16_bytes(k) at `shared`): 8 threads per group, a float4 each. Every load is issued
// before the first is used, so the staging costs about one trip to L2 (a loop that waited for
// each pass made the 14336-wide rows of the down projection slower than the float path); the
// loads take 4 kStageQuads registers, so short rows compile with a smaller kStageQuads. Ends
// with __syncthreads.
template <int kStageQuads>
__device__ inline void stage_x16(const float* __restrict__ x, int64_t k, uint4* shared) {
  const int64_t quads = k / 4;  // a multiple of 32: whole warps per pass
  float4 v[kStageQuads];
#pragma unroll
  for (int pass = 0; pass < kStageQuads; ++pass) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(pass) * kStageThreads;
    v[pass] = i < quads ? __ldg(reinterpret_cast<const float4*>(x) + i)
                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
#pragma unroll
  for (int pass = 0; pass < kStageQuads; ++pass) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(pass) * kStageThreads;
    if (i >= quads) break;  // the same for a whole warp
    stage_quad_x16(v[pass], i, k, shared);
  }
  __syncthreads();
}

// kStage of the GEMV kernels for x staged by the op that wrote it (x16_groups: stage_x16's
// layout, staged_x16_bytes(k), in global memory): lanes read their groups from there as they go,
// with no staging of the block's own and no __syncthreads before the first product.
constexpr int kStageGlobal = 1;

}  // namespace flow2::cuda
