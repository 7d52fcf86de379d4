// Device discovery for the CUDA backend (the backend's kernels come with the CUDA issue).
#include <cuda_runtime.h>

namespace flow2 {

int cuda_device_count_runtime() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

}  // namespace flow2
