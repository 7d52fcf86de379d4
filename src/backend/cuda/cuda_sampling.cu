// Choosing tokens on the GPU: the index of each row's largest logit, so that greedy decoding
// copies 4 bytes per sequence back to the host instead of the whole vocabulary's logits.
#include <cfloat>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace flow2::cuda {
namespace {

constexpr int kThreads = 512;

// The larger value wins; equal values go to the lower index (the first maximum, as
// std::max_element picks it).
__device__ inline void keep_better(float& value, int32_t& index, float other_value,
                                   int32_t other_index) {
  if (other_value > value || (other_value == value && other_index < index)) {
    value = other_value;
    index = other_index;
  }
}

// One block per row.
__global__ void argmax_kernel(const float* logits, int64_t width, int32_t* out) {
  begin_after_prior_kernels();
  __shared__ float best_values[kThreads / 32];
  __shared__ int32_t best_indices[kThreads / 32];
  const float* row = logits + blockIdx.x * width;
  float value = -INFINITY;
  int32_t index = 0x7fffffff;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    keep_better(value, index, row[j], static_cast<int32_t>(j));
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_xor_sync(0xffffffff, value, offset);
    const int32_t other_index = __shfl_xor_sync(0xffffffff, index, offset);
    keep_better(value, index, other_value, other_index);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  if (lane == 0) {
    best_values[warp] = value;
    best_indices[warp] = index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) {
      keep_better(best_values[0], best_indices[0], best_values[w], best_indices[w]);
    }
    // A row of NaN only has no maximum: index 0, as std::max_element gives.
    out[blockIdx.x] = best_indices[0] == 0x7fffffff ? 0 : best_indices[0];
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
