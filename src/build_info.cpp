#include "flow2/build_info.h"

namespace flow2 {

#ifdef FLOW2_HAVE_CUDA
int cuda_device_count_runtime();  // backend/cuda/cuda_devices.cu
bool built_with_cuda() {
  return true;
}
int cuda_device_count() {
  return cuda_device_count_runtime();
}
#else
bool built_with_cuda() {
  return false;
}
int cuda_device_count() {
  return 0;
}
#endif

std::string version() {
  return FLOW2_VERSION;
}

}  // namespace flow2
