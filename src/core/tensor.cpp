#include "flow2/tensor.h"

#include <cstring>

#include "flow2/error.h"

namespace flow2 {

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  return count;
}

std::string shape_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::vector<float> HostTensor::to_f32() const {
  std::vector<float> values(static_cast<size_t>(numel()));
  convert_to_f32(dtype, bytes.data(), values.size(), values.data());
  return values;
}

std::vector<int64_t> HostTensor::to_i64() const {
  check(!is_floating(dtype), "tensor '{}' is {}, expected an integer type", name,
        dtype_name(dtype));
  std::vector<int64_t> values(static_cast<size_t>(numel()));
  auto each = [&]<typename T>(T) {
    for (size_t i = 0; i < values.size(); ++i) {
      T value;
      std::memcpy(&value, bytes.data() + i * sizeof(T), sizeof(T));
      values[i] = static_cast<int64_t>(value);
    }
  };
  switch (dtype) {
    case DType::BOOL:
    case DType::U8:
      each(uint8_t{});
      break;
    case DType::I8:
      each(int8_t{});
      break;
    case DType::U16:
      each(uint16_t{});
      break;
    case DType::I16:
      each(int16_t{});
      break;
    case DType::U32:
      each(uint32_t{});
      break;
    case DType::I32:
      each(int32_t{});
      break;
    case DType::U64:
      each(uint64_t{});
      break;
    case DType::I64:
      each(int64_t{});
      break;
    default:
      break;
  }
  return values;
}

HostTensor make_host_tensor(std::string name, Shape shape, std::span<const float> values) {
  check(shape_numel(shape) == static_cast<int64_t>(values.size()),
        "tensor '{}': {} values do not fill shape {}", name, values.size(), shape_string(shape));
  auto storage = std::make_shared<std::vector<float>>(values.begin(), values.end());
  HostTensor tensor;
  tensor.name = std::move(name);
  tensor.dtype = DType::F32;
  tensor.shape = std::move(shape);
  tensor.bytes = std::as_bytes(std::span<const float>(*storage));
  tensor.owner = storage;
  return tensor;
}

Tensor Tensor::row_slice(int64_t begin, int64_t count) const {
  check(begin >= 0 && count >= 0 && begin + count <= rows(),
        "row slice [{}, {}) out of range for shape {}", begin, begin + count, shape_string(shape_));
  Shape shape = {count, cols()};
  auto* start =
      static_cast<char*>(data_) + static_cast<size_t>(begin * cols()) * dtype_size(dtype_);
  return Tensor(dtype_, std::move(shape), device_, storage_, start);
}

Tensor Tensor::reshaped(Shape shape) const {
  check(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_string(shape_),
        shape_string(shape));
  return Tensor(dtype_, std::move(shape), device_, storage_, data_);
}

}  // namespace flow2
