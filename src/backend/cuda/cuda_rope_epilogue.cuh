// RoPE and the KV-cache store as the epilogue of q, k and v's GEMV (Backend::qkv_rope_cache), and
// the rotation rope_and_cache_kernel shares with it, so that both give the same bits.
//
// A rotated pair is (i, i + head_dim / 2) of one head. The GEMVs hand a warp's tile of rows to
// lanes (or warps) in pairs of neighbouring local indices (2p, 2p + 1); for q and k, when they
// rotate, local index l of a tile starting at row `first` stands for row paired_row(first, l),
// which puts the two rows of a pair in neighbours: one shuffle (or one shared-memory read) away.
// A tile lies within one head: head_dim is a multiple of the tile's rows (the host checks
// kRopeTileMultiple).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/cuda_cache_access.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace flow2::cuda {

// cos and sin of position * inv_freq, as the CPU's rope computes them (the angle in float, its
// sine and cosine in double).
__device__ inline float2 rope_cos_sin(int32_t position, float inv_freq) {
  const float angle = __fmul_rn(static_cast<float>(position), inv_freq);
  double sine, cosine;
  sincos(static_cast<double>(angle), &sine, &cosine);
  return make_float2(static_cast<float>(cosine), static_cast<float>(sine));
}

// The rotated value of one element of a pair: `first` (i) or the second (i + half), given its
// partner's value.
__device__ inline float rope_rotate(float value, float partner, float2 cs, bool second) {
  return second ? __fadd_rn(__fmul_rn(value, cs.x), __fmul_rn(partner, cs.y))
                : __fsub_rn(__fmul_rn(value, cs.x), __fmul_rn(partner, cs.y));
}

// Row of local index `local` of the tile of q or k rows that starts at `first` (a multiple of the
// tile's rows, which lie in one head): neighbours 2p and 2p + 1 are the rows of pair first %
// head_dim / 2 + p of the head, i and i + head_dim / 2.
__host__ __device__ inline int64_t paired_row(int64_t first, int local, int64_t head_dim) {
  const int64_t within = first % head_dim;
  const int64_t pair = within / 2 + local / 2;
  return first - within + pair + (local % 2) * (head_dim / 2);
}

// Segments of a qkv_rope_cache launch: q, k and v, in that order.
constexpr int kRopeQ = 0, kRopeK = 1, kRopeV = 2;

// Whether rows of segment `segment` are paired (q and k, when they rotate).
__device__ inline bool rope_pairs(const RopeCacheParams& p, int segment) {
  return p.inv_freq != nullptr && segment != kRopeV;
}

// The cos and sin a lane needs for row `row` of segment `segment` and row m of x (any values
// where nothing rotates). Reads only staged inputs: may run before the wait.
__device__ inline float2 rope_angle_for(const RopeCacheParams& p, int segment, int64_t row, int m) {
  if (!rope_pairs(p, segment)) return make_float2(1.0f, 0.0f);
  const int64_t half = p.head_dim / 2;
  return rope_cos_sin(p.positions[m], p.inv_freq[row % p.head_dim % half]);
}

// Row m of x's cache row, as rope_and_cache_kernel places it.
__device__ inline int64_t rope_cache_row(const RopeCacheParams& p, int m) {
  const int64_t sequence = m / p.n_tokens;
  const int64_t past = p.device_n_past ? p.device_n_past[sequence] : p.n_past;
  return sequence * p.capacity + past + m % p.n_tokens;
}

// Stores row `row` (of n) of segment `segment` for row m of x: q, k and v as the products (q and
// k rotated already), k and v also into the cache.
__device__ inline void rope_store(const RopeCacheParams& p, int segment, float* out, int64_t n,
                                  int64_t row, int m, float value) {
  out[m * n + row] = value;
  if (segment == kRopeQ) return;
  void* cache = segment == kRopeK ? p.k_cache : p.v_cache;
  const int64_t at = rope_cache_row(p, m) * n + row;
  if (p.bf16_cache) {
    store_element(static_cast<__nv_bfloat16*>(cache) + at, value);
  } else {
    store_element(static_cast<float*>(cache) + at, value);
  }
}

}  // namespace flow2::cuda
