// Training ops of the Backend interface that the CUDA backend does not have yet: each says so.
#include "backend/cuda/cuda_backend.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

[[noreturn]] void not_on_cuda(const char* op) {
  fail("{} is not implemented on CUDA yet; train with --device cpu", op);
}

}  // namespace

void CudaBackend::matmul_input_grad(Tensor&, const Tensor&, const Tensor&, bool) {
  not_on_cuda("matmul_input_grad");
}

void CudaBackend::rms_norm_backward(Tensor&, const Tensor&, const Tensor&, const Tensor&, float) {
  not_on_cuda("rms_norm_backward");
}

void CudaBackend::layer_norm_backward(Tensor&, const Tensor&, const Tensor&, const Tensor&, float) {
  not_on_cuda("layer_norm_backward");
}

void CudaBackend::segment_attention(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    const SegmentAttention&) {
  not_on_cuda("segment_attention");
}

void CudaBackend::segment_attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&,
                                             const Tensor&, const Tensor&, const Tensor&,
                                             const Tensor&, const Tensor&,
                                             const SegmentAttention&) {
  not_on_cuda("segment_attention_backward");
}

void CudaBackend::gated_activation_backward(Tensor&, Tensor&, const Tensor&, const Tensor&,
                                            const Tensor&, Activation) {
  not_on_cuda("gated_activation_backward");
}

void CudaBackend::activation_backward(Tensor&, const Tensor&, const Tensor&, Activation) {
  not_on_cuda("activation_backward");
}

}  // namespace flow2
