// The CUDA context of a backend: device, stream, cuBLAS, memory pool, scratch and staging.
#include "backend/cuda/cuda_context.h"

#include <cstring>
#include <limits>

#include "backend/cuda/cuda_kernels.h"
#include "flow2/error.h"

namespace flow2::cuda {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    fail("CUDA error in {}: {} ({})", what, cudaGetErrorString(status), cudaGetErrorName(status));
  }
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    fail("cuBLAS error in {}: {}", what, cublasGetStatusString(status));
  }
}

void check_launch(const char* what) {
  check_cuda(cudaGetLastError(), what);
}

Context::Context(int device) : device_(device) {
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp properties{};
  check_cuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
  device_name_ = properties.name;
  multiprocessors_ = properties.multiProcessorCount;
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  // Memory freed between forward passes stays in the pool instead of going back to the driver.
  cudaMemPool_t pool = nullptr;
  check_cuda(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
  uint64_t threshold = std::numeric_limits<uint64_t>::max();
  check_cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
             "cudaMemPoolSetAttribute");
  check_cublas(cublasCreate(&cublas_), "cublasCreate");
  check_cublas(cublasSetStream(cublas_, stream_), "cublasSetStream");
  check_cuda(cudaMallocHost(&host_ring_, kRingBytes), "cudaMallocHost");
  check_cuda(cudaMalloc(&device_ring_, kRingBytes), "cudaMalloc");
}

Context::~Context() {
  // Errors are ignored here: a destructor cannot report them and the process may be exiting.
  cudaSetDevice(device_);
  for (int slot = 0; slot < kScratchSlots; ++slot) {
    if (scratch_[slot]) cudaFreeAsync(scratch_[slot], stream_);
  }
  cudaStreamSynchronize(stream_);
  cublasDestroy(cublas_);
  cudaFree(device_ring_);
  cudaFreeHost(host_ring_);
  cudaStreamDestroy(stream_);
}

void* Context::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* pointer = nullptr;
  cudaError_t status = cudaMallocAsync(&pointer, bytes, stream_);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error state before reporting
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    fail("out of GPU memory on {}: {} bytes asked for, {} of {} bytes free", device_name_, bytes,
         free_bytes, total_bytes);
  }
  check_cuda(status, "cudaMallocAsync");
  return pointer;
}

void Context::release(void* pointer) {
  if (pointer) cudaFreeAsync(pointer, stream_);
}

const void* Context::stage(const void* data, size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t rounded = (bytes + 255) / 256 * 256;
  if (rounded > kRingBytes) {
    // Too large for the ring (a prompt of a million tokens): a scratch buffer of its own.
    void* device = scratch(kLargeStageSlot, bytes);
    check_cuda(cudaMemcpyAsync(device, data, bytes, cudaMemcpyHostToDevice, stream_), "stage");
    check_cuda(cudaStreamSynchronize(stream_), "stage");  // the pageable source has been read
    return device;
  }
  if (ring_offset_ + rounded > kRingBytes) {
    check_cuda(cudaStreamSynchronize(stream_), "staging ring wrap");
    ring_offset_ = 0;
  }
  auto* host = static_cast<char*>(host_ring_) + ring_offset_;
  auto* device = static_cast<char*>(device_ring_) + ring_offset_;
  std::memcpy(host, data, bytes);
  check_cuda(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_), "stage");
  ring_offset_ += rounded;
  return device;
}

void* Context::scratch(int slot, size_t bytes) {
  if (bytes > scratch_bytes_[slot]) {
    release(scratch_[slot]);
    scratch_[slot] = allocate(bytes);
    scratch_bytes_[slot] = bytes;
  }
  return scratch_[slot];
}

void Context::synchronize() {
  check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

}  // namespace flow2::cuda
