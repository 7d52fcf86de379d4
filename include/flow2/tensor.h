// Tensors: HostTensor is a read-only view of bytes in host memory (usually a memory-mapped
// checkpoint); Tensor is a buffer owned by a backend, on the device the backend computes on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flow2/dtype.h"

namespace flow2 {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
// "[2, 24, 320]"
std::string shape_string(const Shape& shape);

struct HostTensor {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::span<const std::byte> bytes;
  // Keeps the memory behind `bytes` alive (a file mapping or an owned buffer).
  std::shared_ptr<const void> owner;

  int64_t numel() const { return shape_numel(shape); }
  // Every element converted to float32.
  std::vector<float> to_f32() const;
  // Every element of an integer tensor as int64 (throws for floating dtypes).
  std::vector<int64_t> to_i64() const;
};

// Makes a HostTensor that owns a copy of `values`.
HostTensor make_host_tensor(std::string name, Shape shape, std::span<const float> values);

enum class Device : uint8_t { CPU, CUDA };

class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape, Device device, std::shared_ptr<void> storage, void* data)
      : dtype_(dtype),
        shape_(std::move(shape)),
        device_(device),
        storage_(std::move(storage)),
        data_(data) {}

  bool defined() const { return data_ != nullptr || shape_numel(shape_) == 0; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  Device device() const { return device_; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return dtype_bytes(dtype_, static_cast<uint64_t>(numel())); }
  int64_t dim(size_t index) const { return shape_.at(index); }
  // The last dimension, and the product of all others: the 2-D view every op works on.
  int64_t cols() const { return shape_.empty() ? 1 : shape_.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T>
  T* data_as() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data_as() const {
    return static_cast<const T*>(data_);
  }

  // Rows [begin, begin + count) of the 2-D view, sharing this tensor's storage.
  Tensor row_slice(int64_t begin, int64_t count) const;
  // The same storage seen with another shape of equal element count.
  Tensor reshaped(Shape shape) const;

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  Device device_ = Device::CPU;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
};

}  // namespace flow2
