// Split-layout rows (cuda_split_layout.h) decoded to float32 (embeddings, to_host) or bf16 (the
// weight slices of prompt GEMMs), streaming at memory bandwidth: one thread per 8 elements, so
// that a warp's loads and its 16-byte stores cover whole lines. Values are the CPU decoders'
// floats exactly.
#include <cuda_bf16.h>

#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_split_codes.cuh"
#include "backend/cuda/cuda_split_layout.h"

namespace flow2::cuda {
namespace {

constexpr int kThreads = 256;

// Element `index` of `word` as flow2's CPU decoder computes it: Q8_0 d * q and Q4_0
// d * (q - 8) are exact products; Q4_1 and the affine layouts round d * q + m once (the CPU
// build fuses it; d * q is exact either way); Q4_K's d * sc * q is exact and - dmin * m rounds
// once with it.
template <WeightFormat F>
__device__ inline float split_value(uint32_t word, int index, float2 params) {
  constexpr int kBits = split_layout(F).code_bits;
  const float q = code_value<kBits>(word, index);
  if constexpr (F == WeightFormat::Q8_0) {
    return __fmul_rn(params.x, q);
  } else if constexpr (F == WeightFormat::Q4_0) {
    return __fmul_rn(params.x, q - 8.0f);
  } else {
    return fmaf(params.x, q, params.y);
  }
}

// Writes values[0 .. kCount) to out as 16-byte vectors (4 floats or 8 bf16), or one by one where
// `out` is not 16-byte aligned (a view into a larger tensor).
template <int kCount>
__device__ inline void store(float* out, const float (&values)[kCount], bool accumulate,
                             bool aligned) {
  if (!aligned) {
#pragma unroll
    for (int e = 0; e < kCount; ++e) out[e] = accumulate ? __fadd_rn(out[e], values[e]) : values[e];
    return;
  }
#pragma unroll
  for (int e = 0; e < kCount; e += 4) {
    float4 result = make_float4(values[e], values[e + 1], values[e + 2], values[e + 3]);
    if (accumulate) {
      const float4 old = *reinterpret_cast<const float4*>(out + e);
      result = make_float4(__fadd_rn(old.x, result.x), __fadd_rn(old.y, result.y),
                           __fadd_rn(old.z, result.z), __fadd_rn(old.w, result.w));
    }
    *reinterpret_cast<float4*>(out + e) = result;
  }
}

template <int kCount>
__device__ inline void store(__nv_bfloat16* out, const float (&values)[kCount], bool,
                             bool aligned) {
  if (!aligned) {
#pragma unroll
    for (int e = 0; e < kCount; ++e) out[e] = __float2bfloat16_rn(values[e]);
    return;
  }
#pragma unroll
  for (int e = 0; e < kCount; e += 8) {
    uint4 packed;
    uint32_t* words = &packed.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(values[e + 2 * j], values[e + 2 * j + 1]);
      words[j] = *reinterpret_cast<const uint32_t*>(&pair);
    }
    *reinterpret_cast<uint4*>(out + e) = packed;
  }
}

// Thread t decodes elements 8c .. 8c + 7 (c = t % (k / 8)) of output row i = t / (k / 8), read
// from weight row ids[i] (or first + i): 4 or 8 bytes of codes per thread, contiguous across a
// warp, and one 16-byte bf16 vector (two float4) written per thread, so every load and store of
// a warp covers whole lines.
template <WeightFormat F, typename Out>
__global__ void __launch_bounds__(kThreads)
    decode_kernel(const uint8_t* __restrict__ weight, int64_t k, const int32_t* __restrict__ ids,
                  int64_t first, int64_t count, Out* __restrict__ out, bool accumulate,
                  bool aligned) {
  begin_after_prior_kernels();
  constexpr int kBits = split_layout(F).code_bits;
  constexpr int kPerWord = 32 / kBits;
  const int64_t chunks = k / 8;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= count * chunks) return;
  const int64_t i = index / chunks, chunk = index % chunks;
  const int64_t row = ids ? ids[i] : first + i;
  const uint8_t* base = weight + row * split_row_bytes(F, k);
  const float2 params =
      split_params<F>(base + split_code_bytes(F, k), chunk * 8 / split_layout(F).group);
  uint32_t words[8 / kPerWord];
  if constexpr (kBits == 4) {
    words[0] = __ldg(reinterpret_cast<const uint32_t*>(base) + chunk);
  } else {
    const uint2 pair = __ldg(reinterpret_cast<const uint2*>(base) + chunk);
    words[0] = pair.x;
    words[1] = pair.y;
  }
  float values[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) values[e] = split_value<F>(words[e / kPerWord], e % kPerWord, params);
  store(out + i * k + chunk * 8, values, accumulate, aligned);
}

template <WeightFormat F, typename Out>
void launch(const void* weight, int64_t k, const int32_t* ids, int64_t first, int64_t count,
            Out* out, bool accumulate, cudaStream_t stream) {
  const int64_t threads = count * (k / 8);
  if (threads == 0) return;
  const bool aligned = reinterpret_cast<uintptr_t>(out) % 16 == 0;
  launch_kernel(decode_kernel<F, Out>, static_cast<unsigned>((threads + kThreads - 1) / kThreads),
                kThreads, 0, stream, static_cast<const uint8_t*>(weight), k, ids, first, count, out,
                accumulate, aligned);
}

template <typename Out>
void decode(WeightFormat format, const void* weight, int64_t k, const int32_t* ids, int64_t first,
            int64_t count, Out* out, bool accumulate, cudaStream_t stream) {
  with_split_format(format, [&](auto f) {
    launch<decltype(f)::value>(weight, k, ids, first, count, out, accumulate, stream);
  });
}

}  // namespace

void decode_split_rows_f32(WeightFormat format, const void* weight, int64_t k, const int32_t* ids,
                           int64_t first, int64_t count, float* out, bool accumulate,
                           cudaStream_t stream) {
  decode(format, weight, k, ids, first, count, out, accumulate, stream);
  check_launch("decode (split layout)");
}

void decode_split_rows_bf16(WeightFormat format, const void* weight, int64_t k, int64_t first,
                            int64_t count, void* out, cudaStream_t stream) {
  decode(format, weight, k, nullptr, first, count, static_cast<__nv_bfloat16*>(out), false, stream);
  check_launch("decode (split layout)");
}

}  // namespace flow2::cuda
