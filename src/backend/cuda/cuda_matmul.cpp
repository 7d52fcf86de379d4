// out = x * W^T (+ bias) on the GPU.
//
// Decoding (up to 4 rows of x) is bound by reading the weights once: custom GEMV kernels read
// every weight form in place. Prompts are bound by arithmetic: cuBLAS runs bf16 (or f16) tensor
// cores with float32 accumulation on x rounded to the weight's 16-bit type; block-quantized
// weights are decoded to bf16 a slice of rows at a time first; float32 weights use float32
// sgemm (no TF32), so float32 checkpoints compute as on the CPU.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

// Weight elements decoded per slice for prompts of block-quantized weights (64 MB of bf16).
constexpr int64_t kDecodeSliceElements = int64_t{32} << 20;

}  // namespace

void CudaBackend::matmul(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const cuda::WeightFormat format = weight_format(weight.dtype(), "matmul");
  const int64_t m = x.rows();
  const int64_t k = x.cols();
  const int64_t n = weight.rows();
  check(weight.cols() == k && out.rows() == m && out.cols() == n,
        "matmul: shapes {} x {}^T -> {} do not agree", shape_string(x.shape()),
        shape_string(weight.shape()), shape_string(out.shape()));
  check(!bias || bias->numel() == n, "matmul: bias has {} elements, expected {}",
        bias ? bias->numel() : 0, n);
  check(x.dtype() == DType::F32 && out.dtype() == DType::F32 &&
            (!bias || bias->dtype() == DType::F32),
        "matmul: activations must be float32");
  if (m == 0 || n == 0) return;
  cudaStream_t stream = context_->stream();
  const float* bias_values = bias ? bias->data_as<float>() : nullptr;
  if (k == 0) {
    if (bias_values) {
      cuda::broadcast_rows(out.data_as<float>(), bias_values, m, n, stream);
    } else {
      cuda::check_cuda(cudaMemsetAsync(out.data(), 0, out.nbytes(), stream), "matmul");
    }
    return;
  }
  const bool blocks = is_quantized(weight.dtype());
  const bool x_aligned = reinterpret_cast<uintptr_t>(x.data()) % 16 == 0;
  if (m <= cuda::kGemvMaxRows && (!blocks || x_aligned)) {
    cuda::gemv(format, weight.data(), x.data_as<float>(), bias_values, out.data_as<float>(), m, n,
               k, stream);
    return;
  }
  gemm(out, x, weight, bias);
}

void CudaBackend::gemm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const int64_t m = x.rows(), k = x.cols(), n = weight.rows();
  cudaStream_t stream = context_->stream();
  cublasHandle_t handle = context_->cublas();
  float* result = out.data_as<float>();
  float beta = 0.0f;
  if (bias) {  // cuBLAS adds beta * C: start C as the bias on every row
    cuda::broadcast_rows(result, bias->data_as<float>(), m, n, stream);
    beta = 1.0f;
  }
  const float alpha = 1.0f;
  // Row-major out[m, n] = x[m, k] W[n, k]^T is column-major out^T[n, m] = W^T... as cuBLAS sees
  // it: op(A) = W (transposed [k, n] column-major), B = x^T ([k, m] column-major).
  if (weight.dtype() == DType::F32) {
    cuda::check_cublas(
        cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                    static_cast<int>(k), &alpha, weight.data_as<float>(), static_cast<int>(k),
                    x.data_as<float>(), static_cast<int>(k), &beta, result, static_cast<int>(n)),
        "matmul sgemm");
    return;
  }
  const bool half = weight.dtype() == DType::F16;
  const cudaDataType type = half ? CUDA_R_16F : CUDA_R_16BF;
  void* x16 = context_->scratch(0, static_cast<size_t>(m * k) * 2);
  if (half) {
    cuda::convert_f32_to_f16(x.data_as<float>(), x16, m * k, stream);
  } else {
    cuda::convert_f32_to_bf16(x.data_as<float>(), x16, m * k, stream);
  }
  auto run = [&](const void* w, int64_t first, int64_t count) {
    cuda::check_cublas(
        cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(count), static_cast<int>(m),
                     static_cast<int>(k), &alpha, w, type, static_cast<int>(k), x16, type,
                     static_cast<int>(k), &beta, result + first, CUDA_R_32F, static_cast<int>(n),
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "matmul gemm");
  };
  if (!is_quantized(weight.dtype())) {
    run(weight.data(), 0, n);
    return;
  }
  const cuda::WeightFormat format = weight_format(weight.dtype(), "matmul");
  const int64_t slice = std::clamp<int64_t>(kDecodeSliceElements / k, 1, n);
  void* decoded = context_->scratch(1, static_cast<size_t>(slice * k) * 2);
  for (int64_t first = 0; first < n; first += slice) {
    const int64_t count = std::min(slice, n - first);
    cuda::dequantize_rows_bf16(format, weight.data(), first, count, k, decoded, stream);
    run(decoded, first, count);
  }
}

}  // namespace flow2
