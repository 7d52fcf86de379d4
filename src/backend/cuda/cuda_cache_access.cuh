// Reading and writing KV-cache rows, which are float32 or bf16 (Backend::make_cache_tensor):
// kernels are templated on the element type and go through these.
#pragma once

#include <cuda_bf16.h>

namespace flow2::cuda {

// Four consecutive elements as floats; `at` is aligned to four elements.
__device__ inline float4 load_four(const float* at) {
  return __ldg(reinterpret_cast<const float4*>(at));
}
__device__ inline float4 load_four(const __nv_bfloat16* at) {
  const uint2 raw = __ldg(reinterpret_cast<const uint2*>(at));
  const float2 low = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
  const float2 high = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
  return make_float4(low.x, low.y, high.x, high.y);
}

__device__ inline void store_element(float* at, float value) {
  *at = value;
}
__device__ inline void store_element(__nv_bfloat16* at, float value) {
  *at = __float2bfloat16_rn(value);
}

}  // namespace flow2::cuda
