// Matrix-vector products for decoding (1-4 rows of x): the weights are read once, in 16-byte
// pieces per lane with several loads in flight, so that they stream at memory bandwidth; x stays
// in L1/L2. Short matrices split each row over up to 8 warps so that every multiprocessor has
// enough loads in flight. Several matrices of the same x run as segments of one grid
// (cuda_gemv_segments.cuh). This file holds the dense rows (float32, bf16, f16); quantized rows
// in the split layout have their own kernels (cuda_split_gemv.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "backend/cuda/cuda_gemv_segments.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_math.cuh"
#include "backend/cuda/cuda_rope_epilogue.cuh"
#include "backend/cuda/cuda_split_layout.h"

namespace flow2::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
// 16-byte loads a lane issues at once (vectorized rows): with one row of x, two (and four warps
// per row, warps_per_row) read bf16 matrices 3-8% faster than four on an H100.
template <int M>
constexpr int kUnroll = M == 1 ? 2 : 4;

__device__ inline void widen(const float4& raw, float* values) {
  values[0] = raw.x;
  values[1] = raw.y;
  values[2] = raw.z;
  values[3] = raw.w;
}

__device__ inline void widen(const uint4& raw, const float*, float* values) {
  widen(*reinterpret_cast<const float4*>(&raw), values);
}

__device__ inline void widen(const uint4& raw, const __nv_bfloat16*, float* values) {
  const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 pair = __bfloat1622float2(pairs[i]);
    values[2 * i] = pair.x;
    values[2 * i + 1] = pair.y;
  }
}

__device__ inline void widen(const uint4& raw, const __half*, float* values) {
  const auto* pairs = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 pair = __half22float2(pairs[i]);
    values[2 * i] = pair.x;
    values[2 * i + 1] = pair.y;
  }
}

// Each warp's sums are added over the WPR warps that share a row (in shared memory) and written
// with the bias by the row's first warp.
template <int M, int WPR>
__device__ inline void finish_row(float (&sum)[M], const float* bias, float* out, int64_t row,
                                  int64_t n) {
  __shared__ float partial[kWarpsPerBlock][M];
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < M; ++r) sum[r] = warp_sum(sum[r]);
  if constexpr (WPR == 1) {
    if (lane == 0 && row < n) {
      const float b = bias ? bias[row] : 0.0f;
#pragma unroll
      for (int r = 0; r < M; ++r) out[r * n + row] = sum[r] + b;
    }
  } else {
    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < M; ++r) partial[warp][r] = sum[r];
    }
    __syncthreads();
    if (warp % WPR == 0 && lane < M && row < n) {
      float total = bias ? bias[row] : 0.0f;
#pragma unroll
      for (int p = 0; p < WPR; ++p) total += partial[warp + p][lane];
      out[lane * n + row] = total;
    }
  }
}

// finish_row for q, k and v of qkv_rope_cache (cuda_rope_epilogue.cuh): the block's rows are a
// tile of q or k whose neighbours 2p and 2p + 1 pair up, so the totals meet in shared memory and
// the row's first warp rotates them (`angle` for row m = lane) and stores them with k and v's
// cache rows. The totals add up as finish_row's do.
template <int M, int WPR>
__device__ inline void finish_rope_row(float (&sum)[M], const float* bias, float* out, int64_t row,
                                       int64_t n, const RopeCacheParams& rope, int segment,
                                       bool paired, float2 angle) {
  constexpr int kRowsPerBlock = kWarpsPerBlock / WPR;
  static_assert(kRowsPerBlock % 2 == 0, "a block holds whole pairs of rows");
  __shared__ float partial[kWarpsPerBlock][M];
  __shared__ float totals[kRowsPerBlock][M];
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, local = warp / WPR;
#pragma unroll
  for (int r = 0; r < M; ++r) sum[r] = warp_sum(sum[r]);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < M; ++r) partial[warp][r] = sum[r];
  }
  __syncthreads();
  const bool first_warp = warp % WPR == 0;
  if (first_warp && lane < M) {
    float total;
    if constexpr (WPR == 1) {
      total = partial[warp][lane] + (bias && row < n ? bias[row] : 0.0f);
    } else {
      total = bias && row < n ? bias[row] : 0.0f;
#pragma unroll
      for (int p = 0; p < WPR; ++p) total += partial[warp + p][lane];
    }
    totals[local][lane] = total;
  }
  __syncthreads();
  if (first_warp && lane < M && row < n) {
    const float value = totals[local][lane];
    const float rotated =
        paired ? rope_rotate(value, totals[local ^ 1][lane], angle, local % 2 == 1) : value;
    rope_store(rope, segment, out, n, row, lane, rotated);
  }
}

// Adds row `row`'s products with the M rows of x to sum (dense rows: float, bf16, f16); the WPR
// warps of a row take every WPR-th 16-byte piece of 32 lanes. `vectorized`: rows and x are
// 16-byte aligned (k a multiple of 16 bytes' elements).
template <typename W, int M, int WPR>
__device__ inline void accumulate_row(const W* __restrict__ w, const float* __restrict__ x,
                                      int64_t k, bool vectorized, float (&sum)[M]) {
  const int lane = threadIdx.x & 31, part = (threadIdx.x / 32) % WPR;
  if (vectorized) {
    constexpr int kPer = 16 / sizeof(W);  // elements per 16-byte load
    const int64_t step = int64_t{WPR} * 32 * kPer;
    auto accumulate = [&](const uint4& raw, int64_t base) {
      float wv[kPer];
      widen(raw, w, wv);
#pragma unroll
      for (int r = 0; r < M; ++r) {
#pragma unroll
        for (int j = 0; j < kPer; j += 4) {
          float xv[4];
          widen(__ldg(reinterpret_cast<const float4*>(x + r * k + base + j)), xv);
#pragma unroll
          for (int e = 0; e < 4; ++e) sum[r] = fmaf(wv[j + e], xv[e], sum[r]);
        }
      }
    };
    int64_t base = (int64_t{part} * 32 + lane) * kPer;
    constexpr int kLoads = kUnroll<M>;
    for (; base + (kLoads - 1) * step < k; base += kLoads * step) {
      uint4 raw[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        raw[u] = __ldg(reinterpret_cast<const uint4*>(w + base + u * step));
      }
#pragma unroll
      for (int u = 0; u < kLoads; ++u) accumulate(raw[u], base + u * step);
    }
    for (; base < k; base += step) {
      accumulate(__ldg(reinterpret_cast<const uint4*>(w + base)), base);
    }
  } else {
    for (int64_t i = int64_t{part} * 32 + lane; i < k; i += int64_t{WPR} * 32) {
      const float wi = to_float(w[i]);
#pragma unroll
      for (int r = 0; r < M; ++r) sum[r] = fmaf(wi, x[r * k + i], sum[r]);
    }
  }
}

// Asks L2 for the weights of a lane's first kUnroll pieces of its row (accumulate_row's first
// pass) before the kernel waits for the previous one: weights never change on the GPU, so their
// first bytes stream in while the previous kernel drains, and the pass then finds them in L2.
// Prefetches, not loads into registers: holding the first pass in registers until the loop
// changed how the compiler scheduled it (bf16, one row of x: 42-54 registers instead of 34,
// so fewer warps per multiprocessor).
template <typename W, int M, int WPR>
__device__ inline void prefetch_first_pass(const W* w, int64_t k, bool vectorized) {
  constexpr int kPer = 16 / sizeof(W), kLoads = kUnroll<M>;
  const int lane = threadIdx.x & 31, part = (threadIdx.x / 32) % WPR;
  const int64_t base = (int64_t{part} * 32 + lane) * kPer, step = int64_t{WPR} * 32 * kPer;
  if (!vectorized || base + (kLoads - 1) * step >= k) return;  // rows shorter than a pass
#pragma unroll
  for (int u = 0; u < kLoads; ++u) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(w + base + u * step));
  }
}

// A block's rows belong to one of up to S segments (one matrix, its bias and its output). With
// kRope the segments are q, k and v of qkv_rope_cache (finish_rope_row; the block's rows are one
// tile of paired_row).
template <typename W, int M, int WPR, int S, bool kRope>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemv_dense(const __grid_constant__ BlockSegments segments, const float* __restrict__ x,
               int64_t k, bool vectorized, const __grid_constant__ RopeCacheParams rope) {
  constexpr int kRowsPerBlock = kWarpsPerBlock / WPR;
  int64_t block = 0;
  const int segment_index = block_segment<S>(segments, block);
  const GemvSegment& segment = segments.segment[segment_index];
  const W* __restrict__ weight = static_cast<const W*>(segment.weight);
  const int64_t n = segment.n;
  const int local = threadIdx.x / 32 / WPR;
  const bool paired = kRope && rope_pairs(rope, segment_index);
  const int64_t row = paired ? paired_row(block * kRowsPerBlock, local, rope.head_dim)
                             : block * kRowsPerBlock + local;
  // Dependents may launch as soon as every block runs (cuda_launch.cuh); the first weights
  // stream in while the previous kernel, which wrote x, finishes.
  let_next_kernel_launch();
  if (row < n) prefetch_first_pass<W, M, WPR>(weight + row * k, k, vectorized);
  float2 angle{};
  if constexpr (kRope) {
    // The rows of x this thread stores (finish_rope_row: m = lane).
    const int m = min(static_cast<int>(threadIdx.x & 31), M - 1);
    angle = rope_angle_for(rope, segment_index, row, m);
  }
  wait_for_prior_kernels();
  float sum[M] = {};
  if (row < n) accumulate_row<W, M, WPR>(weight + row * k, x, k, vectorized, sum);
  if constexpr (kRope) {
    finish_rope_row<M, WPR>(sum, segment.bias, segment.out, row, n, rope, segment_index, paired,
                            angle);
  } else {
    finish_row<M, WPR>(sum, segment.bias, segment.out, row, n);
  }
}

// out = act(x gate^T) * (x up^T) in one pass (SwiGLU / GeGLU feed-forward): a warp takes row
// `row` of both matrices; the totals add up in the order finish_row uses, so the result equals
// two GEMVs and gated_activation bit for bit.
template <typename W, int M, int WPR>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemv_gated(const W* __restrict__ gate, const W* __restrict__ up, const float* __restrict__ x,
               float* __restrict__ out, int64_t n, int64_t k, bool vectorized,
               ActivationKind activation) {
  constexpr int kRowsPerBlock = kWarpsPerBlock / WPR;
  __shared__ float partial[kWarpsPerBlock][2][M];
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp / WPR;
  let_next_kernel_launch();  // as in gemv_dense
  if (row < n) {
    prefetch_first_pass<W, M, WPR>(gate + row * k, k, vectorized);
    prefetch_first_pass<W, M, WPR>(up + row * k, k, vectorized);
  }
  wait_for_prior_kernels();
  float gate_sum[M] = {}, up_sum[M] = {};
  if (row < n) {
    accumulate_row<W, M, WPR>(gate + row * k, x, k, vectorized, gate_sum);
    accumulate_row<W, M, WPR>(up + row * k, x, k, vectorized, up_sum);
  }
#pragma unroll
  for (int r = 0; r < M; ++r) {
    gate_sum[r] = warp_sum(gate_sum[r]);
    up_sum[r] = warp_sum(up_sum[r]);
  }
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < M; ++r) {
      partial[warp][0][r] = gate_sum[r];
      partial[warp][1][r] = up_sum[r];
    }
  }
  __syncthreads();
  if (warp % WPR == 0 && lane < M && row < n) {
    float g = 0.0f, u = 0.0f;
#pragma unroll
    for (int p = 0; p < WPR; ++p) {
      g += partial[warp + p][0][lane];
      u += partial[warp + p][1][lane];
    }
    out[lane * n + row] = activate(g, activation) * u;
  }
}

template <int M, int WPR, int S, bool kRope>
void launch(WeightFormat format, const GemvSegments& segments, const float* x, int64_t k,
            const RopeCacheParams& rope, cudaStream_t stream) {
  const BlockSegments table = assign_blocks(segments, kWarpsPerBlock / WPR);
  const dim3 grid(table.blocks);
  const dim3 block(kWarpsPerBlock * 32);
  uintptr_t addresses = reinterpret_cast<uintptr_t>(x);
  for (int s = 0; s < segments.count; ++s) {
    addresses |= reinterpret_cast<uintptr_t>(segments.segment[s].weight);
  }
  const bool aligned = addresses % 16 == 0;
  switch (format) {
    case WeightFormat::F32:
      launch_kernel(gemv_dense<float, M, WPR, S, kRope>, grid, block, 0, stream, table, x, k,
                    aligned && k % 4 == 0, rope);
      break;
    case WeightFormat::BF16:
      launch_kernel(gemv_dense<__nv_bfloat16, M, WPR, S, kRope>, grid, block, 0, stream, table, x,
                    k, aligned && k % 8 == 0, rope);
      break;
    case WeightFormat::F16:
      launch_kernel(gemv_dense<__half, M, WPR, S, kRope>, grid, block, 0, stream, table, x, k,
                    aligned && k % 8 == 0, rope);
      break;
    default:  // quantized formats: gemv_split
      break;
  }
}

// Warps per row: at least four for rows of 1024 elements and more (measured on an H100 with bf16
// rows of 4096 and 14336: faster than one or two even for the 128256 rows of an output head),
// eight where that leaves fewer than about 48 warps per multiprocessor (their loads in flight
// hide memory latency). n counts the rows of all segments of a launch.
int warps_per_row(int64_t n, int64_t k) {
  const int64_t wanted = int64_t{48} * multiprocessor_count();
  if (k < 1024) return 1;
  return 4 * n >= wanted ? 4 : 8;
}

// Calls f with std::integral_constant<int, W> for W, the warps per row that warps_per_row picks.
template <typename F>
void with_warps_per_row(int64_t n, int64_t k, F&& f) {
  with_constant<1, 4, 8>(warps_per_row(n, k), std::forward<F>(f));
}

// gemv_segments' dense launch; with kRope (qkv_rope_cache: three segments, and 1 or 4 warps a
// row, as gemv_rope_cache_supported checks) a block holds pairs of rows.
template <bool kRope>
void launch_dense(WeightFormat format, const GemvSegments& segments, const float* x, int64_t m,
                  int64_t k, const RopeCacheParams& rope, cudaStream_t stream) {
  with_rows(m, [&](auto rows) {
    constexpr int M = decltype(rows)::value;
    if constexpr (kRope) {
      with_constant<1, 4>(warps_per_row(total_rows(segments), k), [&](auto warps) {
        launch<M, decltype(warps)::value, kGemvMaxSegments, true>(format, segments, x, k, rope,
                                                                  stream);
      });
    } else {
      with_warps_per_row(total_rows(segments), k, [&](auto warps) {
        with_segments(segments, [&](auto tables) {
          launch<M, decltype(warps)::value, decltype(tables)::value, false>(format, segments, x, k,
                                                                            rope, stream);
        });
      });
    }
  });
}

template <typename W, int M, int WPR>
void launch_gated(const void* gate, const void* up, const float* x, float* out, int64_t n,
                  int64_t k, ActivationKind activation, cudaStream_t stream) {
  constexpr int kRowsPerBlock = kWarpsPerBlock / WPR;
  const dim3 grid(static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock));
  const uintptr_t addresses = reinterpret_cast<uintptr_t>(gate) | reinterpret_cast<uintptr_t>(up) |
                              reinterpret_cast<uintptr_t>(x);
  const bool vectorized = addresses % 16 == 0 && k % (16 / sizeof(W)) == 0;
  launch_kernel(gemv_gated<W, M, WPR>, grid, kWarpsPerBlock * 32, 0, stream,
                static_cast<const W*>(gate), static_cast<const W*>(up), x, out, n, k, vectorized,
                activation);
}

template <typename W>
void launch_gated_rows(const void* gate, const void* up, const float* x, float* out, int64_t m,
                       int64_t n, int64_t k, ActivationKind activation, cudaStream_t stream) {
  with_rows(m, [&](auto rows) {
    with_warps_per_row(n, k, [&](auto warps) {
      launch_gated<W, decltype(rows)::value, decltype(warps)::value>(gate, up, x, out, n, k,
                                                                     activation, stream);
    });
  });
}

}  // namespace

void gemv(WeightFormat format, const void* weight, const float* x, const float* bias, float* out,
          int64_t m, int64_t n, int64_t k, cudaStream_t stream, const void* x16_groups) {
  GemvSegments segments;
  segments.segment[0] = {weight, bias, out, n};
  segments.count = 1;
  gemv_segments(format, segments, x, m, k, stream, x16_groups);
}

void gemv_segments(WeightFormat format, const GemvSegments& segments, const float* x, int64_t m,
                   int64_t k, cudaStream_t stream, const void* x16_groups) {
  if (is_split(format)) {
    gemv_split(format, segments, x, x16_groups, m, k, stream);
    return;
  }
  launch_dense<false>(format, segments, x, m, k, RopeCacheParams{}, stream);
  check_launch("gemv");
}

bool gemv_rope_cache_supported(WeightFormat format, int64_t rows, int64_t k) {
  return is_split(format) || warps_per_row(rows, k) <= 4;
}

void gemv_rope_cache(WeightFormat format, const GemvSegments& qkv, const float* x, int64_t m,
                     int64_t k, const RopeCacheParams& rope, cudaStream_t stream,
                     const void* x16_groups) {
  if (is_split(format)) {
    gemv_split_rope(format, qkv, x, x16_groups, m, k, rope, stream);
    return;
  }
  launch_dense<true>(format, qkv, x, m, k, rope, stream);
  check_launch("gemv with RoPE and cache");
}

bool gemv_gated_stages_output(WeightFormat format, int64_t m, int64_t n) {
  return is_split(format) && m == 1 && takes_x16_groups(n);
}

bool gemv_gated_supported(WeightFormat format) {
  return format == WeightFormat::F32 || format == WeightFormat::BF16 ||
         format == WeightFormat::F16 || is_split(format);
}

void gemv_gated(WeightFormat format, const void* gate, const void* up, const float* x, float* out,
                int64_t m, int64_t n, int64_t k, ActivationKind activation, cudaStream_t stream,
                const void* x16_groups, void* out_x16) {
  if (is_split(format)) {
    gemv_gated_split(format, gate, up, x, x16_groups, out, out_x16, m, n, k, activation, stream);
    return;
  }
  switch (format) {
    case WeightFormat::F32:
      launch_gated_rows<float>(gate, up, x, out, m, n, k, activation, stream);
      break;
    case WeightFormat::BF16:
      launch_gated_rows<__nv_bfloat16>(gate, up, x, out, m, n, k, activation, stream);
      break;
    case WeightFormat::F16:
      launch_gated_rows<__half>(gate, up, x, out, m, n, k, activation, stream);
      break;
    default:
      return;  // gemv_gated_supported said no
  }
  check_launch("gemv_gated");
}

}  // namespace flow2::cuda
