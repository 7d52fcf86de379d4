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
  check(tensor.dtype() == DType::F32, "to_host: expected a float32 tensor");
  const float* data = tensor.data_as<float>();
  return std::vector<float>(data, data + tensor.numel());
}

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace flow2
