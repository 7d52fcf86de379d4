// Device helpers shared by the CUDA kernels: conversions, and warp and block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/cuda_kernels.h"

namespace flow2::cuda {

__device__ inline float to_float(float value) {
  return value;
}
__device__ inline float to_float(__nv_bfloat16 value) {
  return __bfloat162float(value);
}
__device__ inline float to_float(__half value) {
  return __half2float(value);
}

__device__ inline float half_bits_to_float(uint16_t bits) {
  return __half2float(__ushort_as_half(bits));
}

__device__ inline float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffff, value, offset);
  return value;
}

__device__ inline float warp_max(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(0xffffffff, value, offset));
  }
  return value;
}

// 1 / sqrt(sum_squares / width + eps), in double as the CPU backend computes it (the norms'
// results stay equal to it and to each other bit for bit).
__device__ inline float inverse_root_mean(float sum_squares, int64_t width, float eps) {
  return static_cast<float>(
      1.0 / sqrt(static_cast<double>(sum_squares) / static_cast<double>(width) + eps));
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ inline float block_sum(float value) {
  __shared__ float partial[32];
  __shared__ float total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  value = warp_sum(value);
  __syncthreads();  // `partial` may still be read by a previous call
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  if (warp == 0) {
    float sum = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : 0.0f;
    sum = warp_sum(sum);
    if (lane == 0) total = sum;
  }
  __syncthreads();
  return total;
}

// The activations of gated and plain feed-forward layers, as the CPU computes them.
__device__ inline float activate(float x, ActivationKind activation) {
  switch (activation) {
    case ActivationKind::Silu:
      return x / (1.0f + expf(-x));
    case ActivationKind::GeluTanh: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    }
    case ActivationKind::GeluErf:
      return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case ActivationKind::Relu:
      return x > 0.0f ? x : 0.0f;
  }
  return x;
}

}  // namespace flow2::cuda
