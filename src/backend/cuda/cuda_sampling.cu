// Choosing tokens on the GPU: the index of each row's largest logit, so that greedy decoding
// copies 4 bytes per sequence back to the host instead of the whole vocabulary's logits.
#include <cfloat>
#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace flow2::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kLoads = 8;  // 16-byte loads a thread keeps in flight

// The larger value wins; equal values go to the lower index (the first maximum, as
// std::max_element picks it).
__device__ inline void keep_better(float& value, int32_t& index, float other_value,
                                   int32_t other_index) {
  if (other_value > value || (other_value == value && other_index < index)) {
    value = other_value;
    index = other_index;
  }
}

__device__ inline void keep_better(float& value, int32_t& index, const float4& four,
                                   int64_t first) {
  keep_better(value, index, four.x, static_cast<int32_t>(first));
  keep_better(value, index, four.y, static_cast<int32_t>(first + 1));
  keep_better(value, index, four.z, static_cast<int32_t>(first + 2));
  keep_better(value, index, four.w, static_cast<int32_t>(first + 3));
}

__device__ inline void warp_keep_better(float& value, int32_t& index) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_xor_sync(0xffffffff, value, offset);
    const int32_t other_index = __shfl_xor_sync(0xffffffff, index, offset);
    keep_better(value, index, other_value, other_index);
  }
}

// One block per row. A row of Llama 3's 128256 logits is 32 16-byte loads per thread, issued
// kLoads at a time: the loop of one float at a time that this replaces waited for each load in
// turn (108 us a row on an H100, under ncu).
__global__ void __launch_bounds__(kThreads)
    argmax_kernel(const float* logits, int64_t width, int32_t* out) {
  begin_after_prior_kernels();
  __shared__ float best_values[kThreads / 32];
  __shared__ int32_t best_indices[kThreads / 32];
  const float* row = logits + blockIdx.x * width;
  float value = -INFINITY;
  int32_t index = 0x7fffffff;
  int64_t scalar_from = 0;  // elements before it were read as float4
  if (width % 4 == 0 && reinterpret_cast<uintptr_t>(row) % 16 == 0) {
    const auto* fours = reinterpret_cast<const float4*>(row);
    const int64_t count = width / 4;
    int64_t q = threadIdx.x;
    for (; q + (kLoads - 1) * kThreads < count; q += kLoads * kThreads) {
      float4 loaded[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) loaded[u] = __ldg(fours + q + u * kThreads);
#pragma unroll
      for (int u = 0; u < kLoads; ++u) keep_better(value, index, loaded[u], 4 * (q + u * kThreads));
    }
    for (; q < count; q += kThreads) keep_better(value, index, __ldg(fours + q), 4 * q);
    scalar_from = width;
  }
  for (int64_t j = scalar_from + threadIdx.x; j < width; j += kThreads) {
    keep_better(value, index, row[j], static_cast<int32_t>(j));
  }
  warp_keep_better(value, index);
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  if (lane == 0) {
    best_values[warp] = value;
    best_indices[warp] = index;
  }
  __syncthreads();
  if (warp == 0) {
    value = best_values[lane];
    index = best_indices[lane];
    warp_keep_better(value, index);
    // A row of NaN only has no maximum: index 0, as std::max_element gives.
    if (lane == 0) out[blockIdx.x] = index == 0x7fffffff ? 0 : index;
  }
}

}  // namespace

void argmax_rows(const float* logits, int64_t rows, int64_t width, int32_t* out,
                 cudaStream_t stream) {
  if (rows == 0) return;
  launch_kernel(argmax_kernel, static_cast<unsigned>(rows), kThreads, 0, stream, logits, width,
                out);
  check_launch("argmax");
}

}  // namespace flow2::cuda
