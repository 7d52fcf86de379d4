// Fused kernels for decoding: each does the work of several ops in one launch and one pass, with
// the same float operations in the same order as the ops it replaces (so results are equal).
#include <cuda_bf16.h>

#include <algorithm>

#include "backend/cuda/cuda_cache_access.cuh"
#include "backend/cuda/cuda_int16_x.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_math.cuh"
#include "backend/cuda/cuda_rope_epilogue.cuh"

namespace flow2::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row: with kAdd, x += delta first, then the norm of the new x (add_rms_norm);
// without, the norm of x (rms_norm; delta unused, x not written). A thread keeps its kPerThread
// values (elements threadIdx.x + i * blockDim.x) in registers: written as a loop over memory,
// each load waited for the store before it (the pointers may alias), and a 4096-wide row took
// 15 us on an H100 (add_rms_norm, twice per layer of a decoding step; rms_norm 16 us, once per
// token, under ncu). Any block size that is a multiple of 32 (norm_threads picks it).
template <int kPerThread, bool kAdd>
__global__ void add_rms_norm_kernel(float* __restrict__ x, const float* __restrict__ delta,
                                    float* __restrict__ out, const float* __restrict__ weight,
                                    int64_t width, float eps,
                                    __nv_bfloat16* __restrict__ out_bf16) {
  let_next_kernel_launch();
  // The norm's weights (which no kernel writes) are loaded while the previous kernel drains:
  // after the sum of squares they would cost a memory round trip of their own. Wider rows
  // (more than 4096 values) read them at the end, where registers would spill.
  constexpr bool kEarlyScales = kPerThread <= 16;
  float scales[kEarlyScales ? kPerThread : 1];
  if constexpr (kEarlyScales) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int64_t j = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
      scales[i] = j < width ? __ldg(weight + j) : 0.0f;
    }
  }
  wait_for_prior_kernels();
  float* row = x + blockIdx.x * width;
  const float* added = kAdd ? delta + blockIdx.x * width : nullptr;
  float* result = out + blockIdx.x * width;
  float values[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t j = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if constexpr (kAdd) {
      values[i] = j < width ? row[j] + added[j] : 0.0f;
    } else {
      values[i] = j < width ? row[j] : 0.0f;
    }
  }
  float sum_squares = 0.0f;  // in the order of the plain loop: i ascending
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t j = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (j < width) {
      if constexpr (kAdd) row[j] = values[i];
      sum_squares += values[i] * values[i];
    }
  }
  sum_squares = block_sum(sum_squares);
  const float inverse_rms = inverse_root_mean(sum_squares, width, eps);
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t j = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (j < width) {
      float scale;
      if constexpr (kEarlyScales) {
        scale = scales[i];
      } else {
        scale = weight[j];
      }
      const float value = __fmul_rn(scale, __fmul_rn(values[i], inverse_rms));
      result[j] = value;
      if (out_bf16) out_bf16[blockIdx.x * width + j] = __float2bfloat16_rn(value);
    }
  }
}

// add_rms_norm_kernel for rows whose width is a multiple of 4, on 16-byte aligned memory
// (norm_in_quads): a thread's values are kQuads float4 quads, quad q = threadIdx.x + i *
// blockDim.x holding elements 4q .. 4q + 3 (one load or store of 16 bytes where the other
// kernel makes four), so 8 neighbouring threads hold a group of 32 values as the GEMVs' int16
// staging takes them: with out_x16 (one row) the norm stages its output there (stage_quad_x16).
// A decoding step's norm is one block: per warp instruction, 32 lanes of one group (the other
// kernel's layout) made the staging cost 1.2 us of a 4096-wide norm's 5 (H100, ncu).
template <int kQuads, bool kAdd>
__global__ void add_rms_norm_quads_kernel(float* __restrict__ x, const float* __restrict__ delta,
                                          float* __restrict__ out, const float* __restrict__ weight,
                                          int64_t width, float eps,
                                          __nv_bfloat16* __restrict__ out_bf16,
                                          uint4* __restrict__ out_x16) {
  let_next_kernel_launch();
  const int64_t quads = width / 4;
  auto quad_of = [](int i) { return threadIdx.x + static_cast<int64_t>(i) * blockDim.x; };
  // As in add_rms_norm_kernel, the weights load while the previous kernel drains.
  float4 scales[kQuads];
#pragma unroll
  for (int i = 0; i < kQuads; ++i) {
    const int64_t q = quad_of(i);
    scales[i] = q < quads ? __ldg(reinterpret_cast<const float4*>(weight) + q)
                          : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  wait_for_prior_kernels();
  auto* row = reinterpret_cast<float4*>(x + blockIdx.x * width);
  const auto* added = kAdd ? reinterpret_cast<const float4*>(delta + blockIdx.x * width) : nullptr;
  auto* result = reinterpret_cast<float4*>(out + blockIdx.x * width);
  float4 values[kQuads];
#pragma unroll
  for (int i = 0; i < kQuads; ++i) {
    const int64_t q = quad_of(i);
    values[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (q < quads) {
      values[i] = row[q];
      if constexpr (kAdd) {
        const float4 d = added[q];
        values[i] =
            make_float4(values[i].x + d.x, values[i].y + d.y, values[i].z + d.z, values[i].w + d.w);
      }
    }
  }
  float sum_squares = 0.0f;
#pragma unroll
  for (int i = 0; i < kQuads; ++i) {
    const int64_t q = quad_of(i);
    if (q < quads) {
      if constexpr (kAdd) row[q] = values[i];
      const float4 v = values[i];
      sum_squares += v.x * v.x;
      sum_squares += v.y * v.y;
      sum_squares += v.z * v.z;
      sum_squares += v.w * v.w;
    }
  }
  sum_squares = block_sum(sum_squares);
  const float inverse_rms = inverse_root_mean(sum_squares, width, eps);
  auto normed = [&](float value, float scale) {
    return __fmul_rn(scale, __fmul_rn(value, inverse_rms));
  };
#pragma unroll
  for (int i = 0; i < kQuads; ++i) {
    const int64_t q = quad_of(i);
    if (q >= quads) continue;  // the same for whole warps: quads is a multiple of 32 with out_x16
    const float4 v = values[i], s = scales[i];
    const float4 value =
        make_float4(normed(v.x, s.x), normed(v.y, s.y), normed(v.z, s.z), normed(v.w, s.w));
    result[q] = value;
    if (out_bf16) {
      auto* pair = reinterpret_cast<__nv_bfloat162*>(out_bf16 + blockIdx.x * width) + 2 * q;
      pair[0] = __floats2bfloat162_rn(value.x, value.y);
      pair[1] = __floats2bfloat162_rn(value.z, value.w);
    }
    if (out_x16) stage_quad_x16(value, q, width, out_x16);
  }
}

// Rows wider than 64 values per thread: the plain loops.
__global__ void add_rms_norm_wide_kernel(float* __restrict__ x, const float* __restrict__ delta,
                                         float* __restrict__ out, const float* __restrict__ weight,
                                         int64_t width, float eps,
                                         __nv_bfloat16* __restrict__ out_bf16) {
  begin_after_prior_kernels();
  float* row = x + blockIdx.x * width;
  const float* added = delta + blockIdx.x * width;
  float* result = out + blockIdx.x * width;
  float sum_squares = 0.0f;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float value = row[j] + added[j];
    row[j] = value;
    sum_squares += value * value;
  }
  sum_squares = block_sum(sum_squares);
  const float inverse_rms = inverse_root_mean(sum_squares, width, eps);
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float value = __fmul_rn(weight[j], __fmul_rn(row[j], inverse_rms));
    result[j] = value;
    if (out_bf16) out_bf16[blockIdx.x * width + j] = __float2bfloat16_rn(value);
  }
}

// The rotation of rope_kernel for pair i of a head's values (cuda_rope_epilogue.cuh, which the
// GEMV epilogue of qkv_rope_cache shares).
__device__ inline void rotate(float* values, int64_t i, int64_t half, int32_t position,
                              const float* inv_freq) {
  const float2 cs = rope_cos_sin(position, inv_freq[i]);
  const float first = values[i], second = values[i + half];
  values[i] = rope_rotate(first, second, cs, false);
  values[i + half] = rope_rotate(second, first, cs, true);
}

// Per row, one thread for each rotated pair of q, each pair of k (rotated, then both values
// stored in the cache) and each value of v (stored). Without inv_freq nothing rotates.
template <typename Cache>
__global__ void rope_and_cache_kernel(RopeCacheParams p) {
  begin_after_prior_kernels();
  auto* k_cache = static_cast<Cache*>(p.k_cache);
  auto* v_cache = static_cast<Cache*>(p.v_cache);
  const int64_t half = p.head_dim / 2;
  const int64_t q_pairs = p.q_heads * half, k_pairs = p.kv_heads * half;
  const int64_t kv_width = p.kv_heads * p.head_dim;
  const int64_t per_row = q_pairs + k_pairs + kv_width;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= p.rows * per_row) return;
  const int64_t row = index / per_row;
  int64_t item = index % per_row;
  const bool rotating = p.inv_freq != nullptr;
  const int64_t past = p.device_n_past ? p.device_n_past[row / p.n_tokens] : p.n_past;
  const int64_t cache_row = (row / p.n_tokens) * p.capacity + past + row % p.n_tokens;
  if (item < q_pairs) {
    if (rotating) {
      float* head = p.q + row * p.q_heads * p.head_dim + (item / half) * p.head_dim;
      rotate(head, item % half, half, p.positions[row], p.inv_freq);
    }
    return;
  }
  item -= q_pairs;
  if (item < k_pairs) {
    const int64_t offset = (item / half) * p.head_dim;
    const int64_t i = item % half;
    float* head = p.k + row * kv_width + offset;
    if (rotating) rotate(head, i, half, p.positions[row], p.inv_freq);
    store_element(k_cache + cache_row * kv_width + offset + i, head[i]);
    store_element(k_cache + cache_row * kv_width + offset + i + half, head[i + half]);
    return;
  }
  item -= k_pairs;
  store_element(v_cache + cache_row * kv_width + item, p.v[row * kv_width + item]);
}

// Threads of a norm's block: rows of up to 4096 values take 4 values a thread (32 to 1024
// threads; add_rms_norm_kernel<4, ..> fits 1024 threads' registers), wider rows 256 threads.
// A decoding step's norms are one block each and on the critical path: 1024 threads instead of
// 256 for rows of 4096 took tg128 of a Llama-3.1-8B-shaped model from 354.6 / 353.1 to 368.4 /
// 374.3 tok/s (Q4_0) and from 166.9 / 167.0 to 172.1 / 172.3 (bf16) on an H100; 512 threads
// gave 365.1 / 355.4 and 170.7 / 170.6.
constexpr int kMostNormThreads = 1024;

int norm_threads(int64_t width) {
  const int64_t quarter = (width + 3) / 4;
  return quarter <= kMostNormThreads
             ? static_cast<int>(std::max<int64_t>(32, (quarter + 31) / 32 * 32))
             : kThreads;
}

// add_rms_norm_kernel<.., kAdd> for rows of up to 64 values per thread; false for wider rows.
template <bool kAdd>
bool launch_in_registers(float* x, const float* delta, float* out, const float* weight,
                         int64_t rows, int64_t width, float eps, void* out_bf16,
                         cudaStream_t stream, void* out_x16) {
  const int threads = norm_threads(width);
  // Values per thread: 4 up to 4096 values a row; beyond, 256 threads take 17 to 64.
  const int64_t per_thread = (width + threads - 1) / threads;
  auto* bf16 = static_cast<__nv_bfloat16*>(out_bf16);
  auto* x16 = static_cast<uint4*>(out_x16);
  if (norm_in_quads(x, delta, out, weight, out_bf16, width)) {  // per_thread <= 64 then
    auto launch = [&](auto kernel) {
      launch_kernel(kernel, static_cast<unsigned>(rows), threads, 0, stream, x, delta, out, weight,
                    width, eps, bf16, x16);
    };
    if (per_thread <= 4) {
      launch(add_rms_norm_quads_kernel<1, kAdd>);
    } else if (per_thread <= 32) {
      launch(add_rms_norm_quads_kernel<8, kAdd>);
    } else {
      launch(add_rms_norm_quads_kernel<16, kAdd>);
    }
    return true;
  }
  auto launch = [&](auto kernel) {
    launch_kernel(kernel, static_cast<unsigned>(rows), threads, 0, stream, x, delta, out, weight,
                  width, eps, bf16);
  };
  if (per_thread <= 4) {
    launch(add_rms_norm_kernel<4, kAdd>);
  } else if (per_thread <= 32) {
    launch(add_rms_norm_kernel<32, kAdd>);
  } else if (per_thread <= 64) {
    launch(add_rms_norm_kernel<64, kAdd>);
  } else {
    return false;
  }
  return true;
}

}  // namespace

bool norm_in_quads(const void* x, const void* delta, const void* out, const void* weight,
                   const void* out_bf16, int64_t width) {
  auto aligned = [](const void* pointer, uintptr_t bytes) {
    return reinterpret_cast<uintptr_t>(pointer) % bytes == 0;
  };
  return width % 4 == 0 && aligned(x, 16) && aligned(delta, 16) && aligned(out, 16) &&
         aligned(weight, 16) && aligned(out_bf16, 8) && (width + 3) / 4 <= int64_t{16} * kThreads;
}

void add_rms_norm(float* x, const float* delta, float* out, const float* weight, int64_t rows,
                  int64_t width, float eps, void* out_bf16, cudaStream_t stream, void* out_x16) {
  if (rows == 0) return;
  if (!launch_in_registers<true>(x, delta, out, weight, rows, width, eps, out_bf16, stream,
                                 out_x16)) {
    launch_kernel(add_rms_norm_wide_kernel, static_cast<unsigned>(rows), kThreads, 0, stream, x,
                  delta, out, weight, width, eps, static_cast<__nv_bfloat16*>(out_bf16));
  }
  check_launch("add_rms_norm");
}

bool rms_norm_in_registers(float* out, const float* x, const float* weight, int64_t rows,
                           int64_t width, float eps, cudaStream_t stream, void* out_x16) {
  // x is only read (the kernel writes it back with kAdd alone).
  return launch_in_registers<false>(const_cast<float*>(x), nullptr, out, weight, rows, width, eps,
                                    nullptr, stream, out_x16);
}

void rope_and_cache(const RopeCacheParams& p, cudaStream_t stream) {
  const int64_t count =
      p.rows * (p.q_heads * (p.head_dim / 2) + p.kv_heads * (p.head_dim / 2 + p.head_dim));
  if (count == 0) return;
  const auto blocks = static_cast<unsigned>((count + kThreads - 1) / kThreads);
  if (p.bf16_cache) {
    launch_kernel(rope_and_cache_kernel<__nv_bfloat16>, blocks, kThreads, 0, stream, p);
  } else {
    launch_kernel(rope_and_cache_kernel<float>, blocks, kThreads, 0, stream, p);
  }
  check_launch("rope_and_cache");
}

}  // namespace flow2::cuda
