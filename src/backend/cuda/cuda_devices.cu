// Device discovery for the CUDA backend (the backend's kernels come with the CUDA issue).
#include <cuda_runtime.h>

#include "backend/cuda/cuda_kernels.h"

namespace flow2 {

int cuda_device_count_runtime() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

namespace cuda {

int multiprocessor_count() {
  int device = 0, multiprocessors = 132;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
  return multiprocessors;
}

}  // namespace cuda
}  // namespace flow2
