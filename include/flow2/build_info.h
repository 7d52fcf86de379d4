// What this build of flow2 contains and which devices it can use.
#pragma once

#include <string>

namespace flow2 {

std::string version();
bool built_with_cuda();
// CUDA devices visible now; 0 without CUDA support, a driver or a device.
int cuda_device_count();

}  // namespace flow2
