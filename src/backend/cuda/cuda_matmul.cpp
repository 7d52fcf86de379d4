// out = x * W^T (+ bias) on the GPU.
//
// Decoding (up to 4 rows of x) is bound by reading the weights once: custom GEMV kernels read
// every weight form in place. 5-32 rows of x (batched decoding, short prompts) with
// block-quantized weights run a kernel that decodes the codes in registers for bf16 tensor
// cores, reading the weights once too. Longer prompts are bound by arithmetic: cuBLAS runs bf16 (or
// f16) tensor cores with float32 accumulation on x rounded to the weight's 16-bit type;
// block-quantized weights are decoded to bf16 a slice of rows at a time first; float32 weights use
// float32 sgemm (no TF32), so float32 checkpoints compute as on the CPU.
#include <algorithm>
#include <cstdlib>
#include <memory>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_split_layout.h"
#include "backend/op_checks.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

// Weight elements decoded per slice for prompts of block-quantized weights (128 MB of bf16):
// every matrix of an 8B model but its output head fits in one slice. A slice of a few thousand
// rows leaves most multiprocessors idle in its GEMM (4096x14336 at m = 512 in two slices of 2340
// rows took 2.5 times as long as 14336x4096 in one).
constexpr int64_t kDecodeSliceElements = int64_t{64} << 20;

// Rows per decoded slice: slices of equal size, a multiple of 128 rows (the GEMM's tile).
int64_t decode_slice_rows(int64_t n, int64_t k) {
  const int64_t slices =
      std::max<int64_t>(1, (n * k + kDecodeSliceElements - 1) / kDecodeSliceElements);
  const int64_t rows = ((n + slices - 1) / slices + 127) / 128 * 128;
  return std::clamp<int64_t>(rows, 1, n);
}

// Rows of x from which block-quantized weights take the tensor-core kernel rather than the GEMV
// (FLOW2_CUDA_MMA_MIN_ROWS overrides, for measuring).
int64_t mma_split_min_rows() {
  static const int64_t rows = [] {
    const char* value = std::getenv("FLOW2_CUDA_MMA_MIN_ROWS");
    return value && *value ? std::max<int64_t>(1, std::atoll(value)) : cuda::kGemvMaxRows + 1;
  }();
  return rows;
}

// Whether 1-32 rows of x take the tensor-core kernel for block-quantized weights.
bool takes_mma_split(cuda::WeightFormat format, int64_t m) {
  return m >= mma_split_min_rows() && cuda::mma_split_supported(format, m);
}

// out[m, n] (ldc n; float32, or 16-bit as the inputs are) += or = x16[m, k] * rows[n, k]^T on
// tensor cores with float32 accumulation: beta 1 adds to out (a bias broadcast there first), 0
// overwrites it.
void gemm_16bit(cublasHandle_t handle, const void* rows, const void* x16, bool half, void* out,
                cudaDataType out_type, int64_t m, int64_t n, int64_t ldc, int64_t k, bool add) {
  const float alpha = 1.0f, beta = add ? 1.0f : 0.0f;
  const cudaDataType type = half ? CUDA_R_16F : CUDA_R_16BF;
  cuda::check_cublas(
      cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                   static_cast<int>(k), &alpha, rows, type, static_cast<int>(k), x16, type,
                   static_cast<int>(k), &beta, out, out_type, static_cast<int>(ldc),
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "matmul gemm");
}

// x rounded to the weights' 16-bit type for the GEMM, unless an earlier op left that rounding in
// x16 already (`rounded`, Context::holds_rounded).
void round_for_gemm(const float* x, void* x16, int64_t count, bool half, bool rounded,
                    cudaStream_t stream) {
  if (rounded) return;
  if (half) {
    cuda::convert_f32_to_f16(x, x16, count, stream);
  } else {
    cuda::convert_f32_to_bf16(x, x16, count, stream);
  }
}

}  // namespace

bool takes_gemv(const Tensor& x, DType dtype) {
  const int64_t m = x.rows();
  const bool x_aligned = reinterpret_cast<uintptr_t>(x.data()) % 16 == 0;
  return m <= cuda::kGemvMaxRows && (!is_quantized(dtype) || x_aligned) &&
         !takes_mma_split(weight_format(dtype, "matmul"), m);
}

void CudaBackend::matmul(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const cuda::WeightFormat format = weight_format(weight.dtype(), "matmul");
  const int64_t m = x.rows();
  const int64_t k = x.cols();
  const int64_t n = weight.rows();
  check_matmul(out, x, weight, bias);
  check(x.dtype() == DType::F32 && out.dtype() == DType::F32 &&
            (!bias || bias->dtype() == DType::F32),
        "matmul: activations must be float32");
  if (m == 0 || n == 0) return;
  const float* bias_values = bias ? bias->data_as<float>() : nullptr;
  float* result = out.data_as<float>();
  const float* in = x.data_as<float>();
  const void* w = weight.data();
  if (k == 0) {
    const size_t bytes = out.nbytes();
    context_->submit(
        "matmul k=0",
        [=](cudaStream_t stream) {
          if (bias_values) {
            cuda::broadcast_rows(result, bias_values, m, n, stream);
          } else {
            cuda::check_cuda(cudaMemsetAsync(result, 0, bytes, stream), "matmul");
          }
        },
        result, bias_values, m, n);
    return;
  }
  if (takes_gemv(x, weight.dtype())) {
    const void* staged = x16_groups_of(x);
    context_->submit(
        "gemv",
        [=](cudaStream_t stream) {
          cuda::gemv(format, w, in, bias_values, result, m, n, k, stream, staged);
        },
        format, w, in, bias_values, result, m, n, k, staged);
    return;
  }
  if (takes_mma_split(format, m) && reinterpret_cast<uintptr_t>(x.data()) % 16 == 0) {
    void* scratch = context_->scratch(0, static_cast<size_t>(cuda::mma_split_scratch_bytes(m, k)));
    context_->submit(
        "mma split",
        [=](cudaStream_t stream) {
          cuda::mma_split(format, w, in, scratch, bias_values, result, m, n, k, stream);
        },
        format, w, in, scratch, bias_values, result, m, n, k);
    return;
  }
  gemm(out, x, weight, bias);
}

void* CudaBackend::rounding_for_gemm(const Tensor& out) {
  // Float32 checkpoints multiply in float32 (sgemm): no GEMM reads a bf16 x there.
  if (!tensor_core_attention_ || out.rows() <= cuda::kGemvMaxRows || out.dtype() != DType::F32) {
    return nullptr;
  }
  return context_->scratch(0, static_cast<size_t>(out.numel()) * 2);
}

void CudaBackend::keep_rounding(const Tensor& out, void* rounded) {
  if (rounded) context_->set_rounded(out.data(), out.numel(), false, rounded);
}

void* CudaBackend::x16_groups_for(const Tensor& out) {
  if (!four_bit_matrices_ || out.rows() != 1 || out.dtype() != DType::F32 ||
      !cuda::takes_x16_groups(out.cols())) {
    return nullptr;
  }
  return context_->x16_groups_buffer(static_cast<size_t>(cuda::x16_groups_bytes(out.cols())));
}

void CudaBackend::keep_x16_groups(const Tensor& out, void* staged) {
  if (staged) context_->set_x16_groups(out.data(), out.numel(), staged);
}

const void* CudaBackend::x16_groups_of(const Tensor& x) const {
  return x.rows() == 1 ? context_->x16_groups(x.data(), x.numel()) : nullptr;
}

void CudaBackend::gemm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const int64_t m = x.rows(), k = x.cols(), n = weight.rows();
  cublasHandle_t handle = context_->cublas();
  float* result = out.data_as<float>();
  const float* in = x.data_as<float>();
  const float* bias_values = bias ? bias->data_as<float>() : nullptr;
  const void* w = weight.data();
  const DType dtype = weight.dtype();
  // Row-major out[m, n] = x[m, k] W[n, k]^T is column-major out^T[n, m] = W^T... as cuBLAS sees
  // it: op(A) = W (transposed [k, n] column-major), B = x^T ([k, m] column-major).
  if (dtype == DType::F32) {
    context_->submit(
        "sgemm",
        [=](cudaStream_t stream) {
          const float alpha = 1.0f, beta = bias_values ? 1.0f : 0.0f;
          // cuBLAS adds beta * C: start C as the bias on every row.
          if (bias_values) cuda::broadcast_rows(result, bias_values, m, n, stream);
          cuda::check_cublas(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                                         static_cast<int>(m), static_cast<int>(k), &alpha,
                                         static_cast<const float*>(w), static_cast<int>(k), in,
                                         static_cast<int>(k), &beta, result, static_cast<int>(n)),
                             "matmul sgemm");
        },
        result, in, bias_values, w, m, n, k);
    return;
  }
  const bool half = dtype == DType::F16;
  const bool blocks = is_quantized(dtype);
  const cuda::WeightFormat format = weight_format(dtype, "matmul");
  void* x16 = context_->scratch(0, static_cast<size_t>(m * k) * 2);
  // The previous op may have been a GEMM of the same x (q, k and v; gate and up): its rounding
  // is still in x16 (Context::holds_rounded).
  const bool rounded = context_->holds_rounded(in, m * k, half, x16);
  const int64_t slice = blocks ? decode_slice_rows(n, k) : n;
  void* decoded = blocks ? context_->scratch(1, static_cast<size_t>(slice * k) * 2) : nullptr;
  context_->submit(
      "gemm",
      [=](cudaStream_t stream) {
        if (bias_values) cuda::broadcast_rows(result, bias_values, m, n, stream);
        round_for_gemm(in, x16, m * k, half, rounded, stream);
        auto run = [&](const void* rows, int64_t first, int64_t count) {
          gemm_16bit(handle, rows, x16, half, result + first, CUDA_R_32F, m, count, n, k,
                     bias_values != nullptr);
        };
        if (!blocks) {
          run(w, 0, n);
          return;
        }
        for (int64_t first = 0; first < n; first += slice) {
          const int64_t count = std::min(slice, n - first);
          cuda::dequantize_rows_bf16(format, w, first, count, k, decoded, stream);
          run(decoded, first, count);
        }
      },
      result, in, bias_values, w, format, m, n, k, x16, decoded, rounded);
  // Unless this GEMM wrote over its own x (then nothing may reuse the rounding).
  const auto* x_begin = static_cast<const char*>(x.data());
  const auto* out_begin = static_cast<const char*>(out.data());
  if (out_begin + out.nbytes() <= x_begin || x_begin + x.nbytes() <= out_begin) {
    context_->set_rounded(in, m * k, half, x16);
  }
}

bool CudaBackend::prompt_gate_up_16bit(const Tensor& out, const Tensor& x, const Tensor& gate,
                                       const Tensor& up) const {
  const DType dtype = gate.dtype();
  return !context_->in_step() && (dtype == DType::BF16 || dtype == DType::F16) &&
         up.dtype() == dtype && x.dtype() == DType::F32 && out.dtype() == DType::F32 &&
         gate.rows() == up.rows() && gate.cols() == x.cols() && up.cols() == x.cols() &&
         out.rows() == x.rows() && out.cols() == gate.rows();
}

void CudaBackend::prompt_gated_matmul(Tensor& out, const Tensor& x, const Tensor& gate,
                                      const Tensor& up, Activation activation) {
  const int64_t m = x.rows(), k = x.cols(), n = gate.rows();
  const bool half = gate.dtype() == DType::F16;
  // The output's rounding for the down GEMM goes to the same scratch as x16 (written after the
  // GEMMs have read x16): the larger size first, so that neither pointer is left dangling when
  // the scratch grows (an output narrower than x freed the rounding's buffer and the products
  // could be allocated over it).
  void* x16 = context_->scratch(0, static_cast<size_t>(std::max(m * k, m * n)) * 2);
  void* rounded_out = rounding_for_gemm(out);
  const float* in = x.data_as<float>();
  const bool rounded = context_->holds_rounded(in, m * k, half, x16);
  // Freed (stream-ordered) before keep_rounding: a free drops the rounding's record.
  auto products = std::make_unique<Tensor>(allocate(half ? DType::F16 : DType::BF16, {2, m, n}));
  auto* gate_out = static_cast<uint16_t*>(products->data());
  uint16_t* up_out = gate_out + m * n;
  const void* gate_rows = gate.data();
  const void* up_rows = up.data();
  float* result = out.data_as<float>();
  const cuda::ActivationKind kind = activation_kind(activation);
  cublasHandle_t handle = context_->cublas();
  context_->submit(
      "prompt gated_matmul",
      [=](cudaStream_t stream) {
        round_for_gemm(in, x16, m * k, half, rounded, stream);
        const cudaDataType product_type = half ? CUDA_R_16F : CUDA_R_16BF;
        gemm_16bit(handle, gate_rows, x16, half, gate_out, product_type, m, n, n, k, false);
        gemm_16bit(handle, up_rows, x16, half, up_out, product_type, m, n, n, k, false);
        cuda::gated_activation_16bit(result, gate_out, up_out, half, m * n, kind, rounded_out,
                                     stream);
      },
      in, x16, rounded, gate_rows, up_rows, gate_out, result, m, n, k, kind, rounded_out);
  products.reset();
  keep_rounding(out, rounded_out);
}

}  // namespace flow2
