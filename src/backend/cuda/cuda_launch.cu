// The decision whether kernels launch with programmatic dependent launch (cuda_launch.h).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_launch.cuh"

namespace flow2::cuda {
namespace {

// Compiled with the same architectures as every other kernel: its PTX version is theirs.
__global__ void probe_kernel() {}

constexpr int kMaxDevices = 64;
// Per device: 0 not yet asked, 1 PDL impossible, 2 possible.
std::atomic<int> device_support[kMaxDevices];
// -1: no override (the environment decides), 0: off, 1: on.
std::atomic<int> override_setting{-1};

// The device and the kernels (not the environment): CUDA 12.3+ on both sides, where stream
// capture keeps programmatic edges.
bool device_allows(int device) {
  if (CUDART_VERSION < 12030) return false;
  int major = 0, driver = 0;
  cudaFuncAttributes attributes{};
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDriverGetVersion(&driver) != cudaSuccess ||
      cudaFuncGetAttributes(&attributes, probe_kernel) != cudaSuccess) {
    cudaGetLastError();  // not a launch error for check_launch to report later
    return false;
  }
  return driver >= 12030 && programmatic_launch_allowed(major, attributes.ptxVersion, nullptr);
}

bool supported_here() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (device < 0 || device >= kMaxDevices) return device_allows(device);
  int known = device_support[device].load(std::memory_order_relaxed);
  if (known == 0) {  // two threads asking at once compute the same answer
    known = device_allows(device) ? 2 : 1;
    device_support[device].store(known, std::memory_order_relaxed);
  }
  return known == 2;
}

bool environment_allows() {
  static const bool allowed = programmatic_launch_allowed(9, 90, std::getenv("FLOW2_CUDA_PDL"));
  return allowed;
}

}  // namespace

bool programmatic_launch_allowed(int compute_major, int kernel_ptx_version, const char* setting) {
  const bool turned_off = setting && std::strcmp(setting, "0") == 0;
  return compute_major >= 9 && kernel_ptx_version >= 90 && !turned_off;
}

bool programmatic_launch_enabled() {
  const int forced = override_setting.load(std::memory_order_relaxed);
  const bool wanted = forced < 0 ? environment_allows() : forced == 1;
  return wanted && supported_here();
}

void override_programmatic_launch(std::optional<bool> enabled) {
  override_setting.store(enabled ? static_cast<int>(*enabled) : -1, std::memory_order_relaxed);
}

}  // namespace flow2::cuda
