// Host memory for the CPU backend: 64-byte aligned buffers, and weights viewed in place.
#include <cstdlib>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

constexpr size_t kAlignment = 64;

Tensor allocate(Shape shape) {
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * sizeof(float);
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* data = rounded ? std::aligned_alloc(kAlignment, rounded) : nullptr;
  if (rounded && !data) fail("out of memory allocating {} bytes", bytes);
  std::shared_ptr<void> storage(data, std::free);
  return Tensor(DType::F32, std::move(shape), Device::CPU, std::move(storage), data);
}

}  // namespace

Tensor CpuBackend::empty(Shape shape) {
  return allocate(std::move(shape));
}

Tensor CpuBackend::zeros(Shape shape) {
  Tensor tensor = allocate(std::move(shape));
  if (tensor.nbytes()) std::memset(tensor.data(), 0, tensor.nbytes());
  return tensor;
}

Tensor CpuBackend::upload_weight(const HostTensor& host) {
  const void* bytes = host.bytes.data();
  bool aligned = reinterpret_cast<uintptr_t>(bytes) % alignof(float) == 0;
  if (host.dtype == DType::F32 && aligned) {
    // Zero copy: the tensor aliases the mapped file and keeps the mapping alive.
    std::shared_ptr<void> keep_alive = std::const_pointer_cast<void>(host.owner);
    return Tensor(DType::F32, host.shape, Device::CPU, std::move(keep_alive),
                  const_cast<void*>(bytes));
  }
  check(is_floating(host.dtype), "tensor '{}' is {}, expected a floating-point weight", host.name,
        dtype_name(host.dtype));
  // Matrices in 16-bit or block-quantized form stay so: matmul and embedding decode them as they
  // read, at a half to an eighth of float32's memory traffic.
  const bool stays_compact =
      host.dtype == DType::F16 || host.dtype == DType::BF16 || is_quantized(host.dtype);
  if (stays_compact && host.shape.size() == 2) {
    std::shared_ptr<void> keep_alive = std::const_pointer_cast<void>(host.owner);
    if (!keep_alive) {  // a buffer without an owner must be copied to outlive the call
      auto copy = std::make_shared<std::vector<std::byte>>(host.bytes.begin(), host.bytes.end());
      return Tensor(host.dtype, host.shape, Device::CPU, copy, copy->data());
    }
    return Tensor(host.dtype, host.shape, Device::CPU, std::move(keep_alive),
                  const_cast<void*>(bytes));
  }
  Tensor tensor = allocate(host.shape);
  // Conversion of a large weight runs on all cores in chunks (whole blocks when quantized).
  const int64_t count = host.numel();
  const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (count >= kMinParallelElements)
  for (int64_t start = 0; start < count; start += chunk) {
    int64_t n = std::min(chunk, count - start);
    convert_to_f32(host.dtype, host.bytes.data() + dtype_bytes(host.dtype, start),
                   static_cast<size_t>(n), tensor.data_as<float>() + start);
  }
  return tensor;
}

Tensor CpuBackend::from_host(std::span<const float> values, Shape shape) {
  check(shape_numel(shape) == static_cast<int64_t>(values.size()), "{} values do not fill shape {}",
        values.size(), shape_string(shape));
  Tensor tensor = allocate(std::move(shape));
  if (!values.empty()) std::memcpy(tensor.data(), values.data(), values.size_bytes());
  return tensor;
}

std::vector<float> CpuBackend::to_host(const Tensor& tensor) {
  std::vector<float> values(static_cast<size_t>(tensor.numel()));
  convert_to_f32(tensor.dtype(), tensor.data(), values.size(), values.data());
  return values;
}

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace flow2
