// What this build of flow2 contains and which devices it can use.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace flow2 {

std::string version();
bool built_with_cuda();
// CUDA devices visible now; 0 without CUDA support, a driver or a device.
int cuda_device_count();
// How this build was compiled (build type, compiler, instruction sets, CUDA), as key/value pairs
// for reports.
std::vector<std::pair<std::string, std::string>> build_configuration();

}  // namespace flow2
