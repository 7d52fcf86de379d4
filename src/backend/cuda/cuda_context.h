// What every CUDA tensor and op of one backend shares: the device, one stream, the cuBLAS
// handle, reusable scratch buffers and a pinned staging ring for small host inputs.
//
// Tensors free their memory with cudaFreeAsync on the stream through a shared_ptr to this
// context, so a tensor may outlive the backend object that made it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace flow2::cuda {

// Throws flow2::Error with `what` and CUDA's message unless `status` is cudaSuccess.
void check_cuda(cudaError_t status, const char* what);
void check_cublas(cublasStatus_t status, const char* what);

class Context {
 public:
  explicit Context(int device);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  const std::string& device_name() const { return device_name_; }
  int multiprocessors() const { return multiprocessors_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }

  // Stream-ordered device memory from the device's pool (kept cached between forwards).
  void* allocate(size_t bytes);
  void release(void* pointer);
  // A device copy of small host data (ids, positions, frequencies), valid for work queued on
  // the stream until the ring wraps around (the wrap waits for the stream).
  const void* stage(const void* data, size_t bytes);
  template <typename T>
  const T* stage(std::span<const T> values) {
    return static_cast<const T*>(stage(values.data(), values.size_bytes()));
  }
  // Scratch space for one op at a time (ops run in stream order, so reuse is safe); `slot`
  // 0..2 picks independent buffers.
  void* scratch(int slot, size_t bytes);
  void synchronize();

 private:
  int device_;
  std::string device_name_;
  int multiprocessors_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  static constexpr size_t kRingBytes = 4 << 20;
  void* host_ring_ = nullptr;
  void* device_ring_ = nullptr;
  size_t ring_offset_ = 0;
  static constexpr int kLargeStageSlot = 3;  // stage() of more than the ring holds
  static constexpr int kScratchSlots = 4;
  void* scratch_[kScratchSlots] = {};
  size_t scratch_bytes_[kScratchSlots] = {};
};

}  // namespace flow2::cuda
