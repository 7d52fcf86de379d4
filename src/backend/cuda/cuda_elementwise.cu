// Row-wise and elementwise kernels: embeddings, norms, RoPE, activations, residual adds, and the
// conversions that feed the tensor-core GEMMs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/cuda_cache_access.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_math.cuh"
#include "backend/cuda/cuda_split_layout.h"

namespace flow2::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t count) {
  return static_cast<unsigned>((count + kThreads - 1) / kThreads);
}

template <typename T>
__device__ inline float dense_element(const void* table, int64_t index) {
  return to_float(static_cast<const T*>(table)[index]);
}

// Element `column` of row `row` of a weight of `width` columns, decoded to float.
// (Quantized weights are decoded by cuda_split_decode.cu.)
template <WeightFormat F>
__device__ inline float weight_element(const void* weight, int64_t row, int64_t column,
                                       int64_t width) {
  if constexpr (F == WeightFormat::F32) {
    return dense_element<float>(weight, row * width + column);
  } else if constexpr (F == WeightFormat::BF16) {
    return dense_element<__nv_bfloat16>(weight, row * width + column);
  } else {
    return dense_element<__half>(weight, row * width + column);
  }
}

template <WeightFormat F>
__global__ void embedding_kernel(const void* table, const int32_t* ids, int64_t count,
                                 int64_t width, float* out, bool accumulate) {
  begin_after_prior_kernels();
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= count * width) return;
  const int64_t i = index / width, column = index % width;
  const float value = weight_element<F>(table, ids[i], column, width);
  out[index] = accumulate ? __fadd_rn(out[index], value) : value;
}

template <WeightFormat F>
__global__ void dequantize_kernel(const void* weight, int64_t first, int64_t count, int64_t k,
                                  __nv_bfloat16* out) {
  begin_after_prior_kernels();
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= count * k) return;
  out[index] = __float2bfloat16_rn(weight_element<F>(weight, first + index / k, index % k, k));
}

template <WeightFormat F>
void launch_embedding(const void* table, const int32_t* ids, int64_t count, int64_t width,
                      float* out, bool accumulate, cudaStream_t stream) {
  launch_kernel(embedding_kernel<F>, blocks_for(count * width), kThreads, 0, stream, table, ids,
                count, width, out, accumulate);
}

template <WeightFormat F>
void launch_dequantize(const void* weight, int64_t first, int64_t count, int64_t k, void* out,
                       cudaStream_t stream) {
  launch_kernel(dequantize_kernel<F>, blocks_for(count * k), kThreads, 0, stream, weight, first,
                count, k, static_cast<__nv_bfloat16*>(out));
}

__global__ void rms_norm_kernel(float* out, const float* x, const float* weight, int64_t width,
                                float eps) {
  begin_after_prior_kernels();
  const float* in = x + blockIdx.x * width;
  float* result = out + blockIdx.x * width;
  float sum_squares = 0.0f;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) sum_squares += in[j] * in[j];
  sum_squares = block_sum(sum_squares);
  const float inverse_rms = inverse_root_mean(sum_squares, width, eps);
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    result[j] = __fmul_rn(weight[j], __fmul_rn(in[j], inverse_rms));
  }
}

__global__ void layer_norm_kernel(float* out, const float* x, const float* weight,
                                  const float* bias, int64_t width, float eps) {
  begin_after_prior_kernels();
  const float* in = x + blockIdx.x * width;
  float* result = out + blockIdx.x * width;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) sum += in[j];
  const float mean = block_sum(sum) / static_cast<float>(width);
  float sum_squares = 0.0f;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float centered = in[j] - mean;
    sum_squares += centered * centered;
  }
  sum_squares = block_sum(sum_squares);
  const float inverse_std = inverse_root_mean(sum_squares, width, eps);
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    result[j] = __fadd_rn(__fmul_rn(__fmul_rn(in[j] - mean, inverse_std), weight[j]), bias[j]);
  }
}

// One thread per (row, head, i < head_dim / 2). cos/sin in double of the float32 angle, as the
// CPU backend (and so transformers' float32 angles) does.
__global__ void rope_kernel(float* x, int64_t rows, int64_t heads, int64_t head_dim,
                            const int32_t* positions, const float* inv_freq) {
  begin_after_prior_kernels();
  const int64_t half = head_dim / 2;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= rows * heads * half) return;
  const int64_t i = index % half;
  const int64_t head = (index / half) % heads;
  const int64_t row = index / (half * heads);
  const float angle = __fmul_rn(static_cast<float>(positions[row]), inv_freq[i]);
  double sine, cosine;
  sincos(static_cast<double>(angle), &sine, &cosine);
  const float c = static_cast<float>(cosine), s = static_cast<float>(sine);
  float* values = x + row * heads * head_dim + head * head_dim;
  const float first = values[i], second = values[i + half];
  values[i] = __fsub_rn(__fmul_rn(first, c), __fmul_rn(second, s));
  values[i + half] = __fadd_rn(__fmul_rn(second, c), __fmul_rn(first, s));
}

__global__ void gated_kernel(float* out, const float* gate, const float* up, int64_t count,
                             ActivationKind activation, __nv_bfloat16* out_bf16) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float value = activate(gate[i], activation) * up[i];
  out[i] = value;
  if (out_bf16) out_bf16[i] = __float2bfloat16_rn(value);
}

// gated_kernel from 16-bit gate and up values (T: __nv_bfloat16 or __half).
template <typename T>
__global__ void gated_16bit_kernel(float* out, const T* gate, const T* up, int64_t count,
                                   ActivationKind activation, __nv_bfloat16* out_bf16) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = static_cast<float>(gate[i]), u = static_cast<float>(up[i]);
  const float value = activate(g, activation) * u;
  out[i] = value;
  if (out_bf16) out_bf16[i] = __float2bfloat16_rn(value);
}

__global__ void activation_kernel(float* x, int64_t count, ActivationKind activation) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = activate(x[i], activation);
}

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t count) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = a[i] + b[i];
}

// One thread per element of x; row r of sequence b goes to cache row b * capacity + n_past + r.
template <typename Cache>
__global__ void kv_write_kernel(Cache* cache, const float* x, int64_t n_tokens, int64_t width,
                                int64_t capacity, int64_t count, int64_t n_past,
                                const int64_t* device_n_past) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int64_t row = i / width, column = i % width;
  const int64_t b = row / n_tokens, t = row % n_tokens;
  const int64_t past = device_n_past ? device_n_past[b] : n_past;
  store_element(cache + (b * capacity + past + t) * width + column, x[i]);
}

__global__ void to_bf16_kernel(const float* in, __nv_bfloat16* out, int64_t count) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2bfloat16_rn(in[i]);
}

__global__ void to_f16_kernel(const float* in, __half* out, int64_t count) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2half_rn(fminf(fmaxf(in[i], -65504.0f), 65504.0f));
}

__global__ void broadcast_kernel(float* out, const float* bias, int64_t m, int64_t n) {
  begin_after_prior_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < m * n) out[i] = bias[i % n];
}

}  // namespace

void embedding(WeightFormat format, const void* table, const int32_t* ids, int64_t count,
               int64_t width, float* out, bool accumulate, cudaStream_t stream) {
  if (count * width == 0) return;
  if (is_split(format)) {
    decode_split_rows_f32(format, table, width, ids, 0, count, out, accumulate, stream);
    return;
  }
  switch (format) {
    case WeightFormat::F32:
      launch_embedding<WeightFormat::F32>(table, ids, count, width, out, accumulate, stream);
      break;
    case WeightFormat::BF16:
      launch_embedding<WeightFormat::BF16>(table, ids, count, width, out, accumulate, stream);
      break;
    case WeightFormat::F16:
      launch_embedding<WeightFormat::F16>(table, ids, count, width, out, accumulate, stream);
      break;
    default:  // quantized: decode_split_rows_f32 above
      break;
  }
  check_launch("embedding");
}

void dequantize_rows_bf16(WeightFormat format, const void* weight, int64_t first, int64_t count,
                          int64_t k, void* out, cudaStream_t stream) {
  if (count * k == 0) return;
  if (is_split(format)) {
    decode_split_rows_bf16(format, weight, k, first, count, out, stream);
    return;
  }
  switch (format) {
    case WeightFormat::F32:
      launch_dequantize<WeightFormat::F32>(weight, first, count, k, out, stream);
      break;
    case WeightFormat::BF16:
      launch_dequantize<WeightFormat::BF16>(weight, first, count, k, out, stream);
      break;
    case WeightFormat::F16:
      launch_dequantize<WeightFormat::F16>(weight, first, count, k, out, stream);
      break;
    default:  // quantized: decode_split_rows_bf16 above
      break;
  }
  check_launch("dequantize");
}

void convert_f32_to_bf16(const float* in, void* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  launch_kernel(to_bf16_kernel, blocks_for(count), kThreads, 0, stream, in,
                static_cast<__nv_bfloat16*>(out), count);
  check_launch("convert to bf16");
}

void convert_f32_to_f16(const float* in, void* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  launch_kernel(to_f16_kernel, blocks_for(count), kThreads, 0, stream, in,
                static_cast<__half*>(out), count);
  check_launch("convert to f16");
}

void broadcast_rows(float* out, const float* bias, int64_t m, int64_t n, cudaStream_t stream) {
  if (m * n == 0) return;
  launch_kernel(broadcast_kernel, blocks_for(m * n), kThreads, 0, stream, out, bias, m, n);
  check_launch("broadcast bias");
}

void rms_norm(float* out, const float* x, const float* weight, int64_t rows, int64_t width,
              float eps, cudaStream_t stream, void* out_x16) {
  if (rows == 0) return;
  if (!rms_norm_in_registers(out, x, weight, rows, width, eps, stream, out_x16)) {
    launch_kernel(rms_norm_kernel, static_cast<unsigned>(rows), kThreads, 0, stream, out, x, weight,
                  width, eps);
  }
  check_launch("rms_norm");
}

void layer_norm(float* out, const float* x, const float* weight, const float* bias, int64_t rows,
                int64_t width, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  launch_kernel(layer_norm_kernel, static_cast<unsigned>(rows), kThreads, 0, stream, out, x, weight,
                bias, width, eps);
  check_launch("layer_norm");
}

void rope(float* x, int64_t rows, int64_t heads, int64_t head_dim, const int32_t* positions,
          const float* inv_freq, cudaStream_t stream) {
  const int64_t count = rows * heads * (head_dim / 2);
  if (count == 0) return;
  launch_kernel(rope_kernel, blocks_for(count), kThreads, 0, stream, x, rows, heads, head_dim,
                positions, inv_freq);
  check_launch("rope");
}

void gated_activation(float* out, const float* gate, const float* up, int64_t count,
                      ActivationKind activation, void* out_bf16, cudaStream_t stream) {
  if (count == 0) return;
  launch_kernel(gated_kernel, blocks_for(count), kThreads, 0, stream, out, gate, up, count,
                activation, static_cast<__nv_bfloat16*>(out_bf16));
  check_launch("gated_activation");
}

void gated_activation_16bit(float* out, const void* gate, const void* up, bool half, int64_t count,
                            ActivationKind activation, void* out_bf16, cudaStream_t stream) {
  if (count == 0) return;
  if (half) {
    launch_kernel(gated_16bit_kernel<__half>, blocks_for(count), kThreads, 0, stream, out,
                  static_cast<const __half*>(gate), static_cast<const __half*>(up), count,
                  activation, static_cast<__nv_bfloat16*>(out_bf16));
  } else {
    launch_kernel(gated_16bit_kernel<__nv_bfloat16>, blocks_for(count), kThreads, 0, stream, out,
                  static_cast<const __nv_bfloat16*>(gate), static_cast<const __nv_bfloat16*>(up),
                  count, activation, static_cast<__nv_bfloat16*>(out_bf16));
  }
  check_launch("gated_activation (16-bit inputs)");
}

void activation(float* x, int64_t count, ActivationKind activation, cudaStream_t stream) {
  if (count == 0) return;
  launch_kernel(activation_kernel, blocks_for(count), kThreads, 0, stream, x, count, activation);
  check_launch("activation");
}

void add(float* out, const float* a, const float* b, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  launch_kernel(add_kernel, blocks_for(count), kThreads, 0, stream, out, a, b, count);
  check_launch("add");
}

void kv_write(void* cache, bool bf16_cache, const float* x, int64_t batch, int64_t n_tokens,
              int64_t width, int64_t capacity, int64_t n_past, const int64_t* device_n_past,
              cudaStream_t stream) {
  const int64_t count = batch * n_tokens * width;
  if (count == 0) return;
  if (bf16_cache) {
    launch_kernel(kv_write_kernel<__nv_bfloat16>, blocks_for(count), kThreads, 0, stream,
                  static_cast<__nv_bfloat16*>(cache), x, n_tokens, width, capacity, count, n_past,
                  device_n_past);
  } else {
    launch_kernel(kv_write_kernel<float>, blocks_for(count), kThreads, 0, stream,
                  static_cast<float*>(cache), x, n_tokens, width, capacity, count, n_past,
                  device_n_past);
  }
  check_launch("kv_write");
}

}  // namespace flow2::cuda
