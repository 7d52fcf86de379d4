// Device memory of the CUDA backend, and the form weights take there.
//
// Matrices stay as the checkpoint holds them when a kernel reads that form: float32 (exact, so
// float32 checkpoints give the CPU's results), bf16 and f16 (half the bytes; decoding GEMVs read
// them directly, prompt GEMMs run on tensor cores); Q8_0/Q4_0/Q4_1/Q4_K blocks are repacked into
// the split layout (cuda_split_layout.h: GEMVs read it, prompts decode it to bf16 first).
// Q5_K/Q6_K are decoded to bf16 at upload; vectors (norms, biases) become float32.
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_split_upload.h"
#include "backend/cuda/cuda_upload.h"
#include "flow2/error.h"

namespace flow2 {

cuda::WeightFormat weight_format(DType dtype, const char* op) {
  switch (dtype) {
    case DType::F32:
      return cuda::WeightFormat::F32;
    case DType::BF16:
      return cuda::WeightFormat::BF16;
    case DType::F16:
      return cuda::WeightFormat::F16;
    case DType::Q8_0:
      return cuda::WeightFormat::Q8_0;
    case DType::Q4_0:
      return cuda::WeightFormat::Q4_0;
    case DType::Q4_1:
      return cuda::WeightFormat::Q4_1;
    case DType::Q4_A64:
      return cuda::WeightFormat::Q4_A64;
    case DType::Q4_K:
      return cuda::WeightFormat::Q4_K;
    default:
      fail("{}: the CUDA backend does not read {} tensors", op, dtype_name(dtype));
  }
}

namespace {

// FLOW2_CUDA_GRAPHS=0 runs decoding steps op by op (to compare, or to rule graphs out).
bool graphs_enabled() {
  const char* setting = std::getenv("FLOW2_CUDA_GRAPHS");
  return !setting || std::string(setting) != "0";
}

}  // namespace

CudaBackend::CudaBackend(int device)
    : context_(std::make_shared<cuda::Context>(device)), graphs_(graphs_enabled()) {}

void CudaBackend::begin_step() {
  if (graphs_) context_->begin_step();
}

void CudaBackend::end_step() {
  if (graphs_) context_->end_step();
}

void CudaBackend::abort_step() {
  if (graphs_) context_->abort_step();
}

int64_t CudaBackend::peak_device_bytes() const {
  return static_cast<int64_t>(context_->peak_bytes());
}

Tensor CudaBackend::allocate(DType dtype, Shape shape) {
  const size_t bytes = dtype_bytes(dtype, static_cast<uint64_t>(shape_numel(shape)));
  return allocate(dtype, std::move(shape), bytes);
}

Tensor CudaBackend::allocate(DType dtype, Shape shape, size_t bytes) {
  void* data = context_->allocate(bytes);
  // The deleter holds the context: the stream outlives every tensor freed on it.
  std::shared_ptr<void> storage(data,
                                [context = context_](void* pointer) { context->release(pointer); });
  return Tensor(dtype, std::move(shape), Device::CUDA, std::move(storage), data);
}

Tensor CudaBackend::empty(Shape shape) {
  return allocate(DType::F32, std::move(shape));
}

Tensor CudaBackend::zeros(Shape shape) {
  Tensor tensor = allocate(DType::F32, std::move(shape));
  if (tensor.nbytes()) {
    void* data = tensor.data();
    const size_t bytes = tensor.nbytes();
    context_->submit(
        "zeros",
        [=](cudaStream_t stream) {
          cuda::check_cuda(cudaMemsetAsync(data, 0, bytes, stream), "zeros");
        },
        data, bytes);
  }
  return tensor;
}

Tensor CudaBackend::upload_weight(const HostTensor& host) {
  check(is_floating(host.dtype), "tensor '{}' is {}, expected a floating-point weight", host.name,
        dtype_name(host.dtype));
  const bool matrix = host.shape.size() == 2;
  const DType dtype = cuda::device_weight_dtype(host);
  if (matrix && dtype != DType::F32) tensor_core_attention_ = true;
  context_->forget_rounded();  // the copies below write outside submitted ops
  if (auto split = cuda::split_weight_dtype(host)) return upload_split(host, *split);
  Tensor tensor = allocate(dtype, host.shape);
  // Through pinned buffers on a copy stream; the stream waits for the copies (cuda_upload.h).
  uploader().upload(host, tensor);
  return tensor;
}

Tensor CudaBackend::from_host(std::span<const float> values, Shape shape) {
  check(shape_numel(shape) == static_cast<int64_t>(values.size()), "{} values do not fill shape {}",
        values.size(), shape_string(shape));
  Tensor tensor = allocate(DType::F32, std::move(shape));
  context_->forget_rounded();
  if (!values.empty()) {
    // From pageable memory the copy has read `values` when it returns.
    cuda::check_cuda(cudaMemcpyAsync(tensor.data(), values.data(), values.size_bytes(),
                                     cudaMemcpyHostToDevice, context_->stream()),
                     "from_host");
  }
  return tensor;
}

std::vector<float> CudaBackend::to_host(const Tensor& tensor) {
  check(!context_->in_step(), "to_host: nothing is read back inside a decoding step");
  std::vector<float> values(static_cast<size_t>(tensor.numel()));
  if (values.empty()) return values;
  if (tensor.device() == Device::CPU) {
    convert_to_f32(tensor.dtype(), tensor.data(), values.size(), values.data());
    return values;
  }
  if (tensor.dtype() == DType::F32) {
    cuda::check_cuda(cudaMemcpyAsync(values.data(), tensor.data(), tensor.nbytes(),
                                     cudaMemcpyDeviceToHost, context_->stream()),
                     "to_host");
    context_->synchronize();
    return values;
  }
  if (is_quantized(tensor.dtype())) return split_to_host(tensor);  // cuda_split_upload.cpp
  std::vector<std::byte> bytes(tensor.nbytes());
  cuda::check_cuda(cudaMemcpyAsync(bytes.data(), tensor.data(), bytes.size(),
                                   cudaMemcpyDeviceToHost, context_->stream()),
                   "to_host");
  context_->synchronize();
  convert_to_f32(tensor.dtype(), bytes.data(), values.size(), values.data());
  return values;
}

}  // namespace flow2
