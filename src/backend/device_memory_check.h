// Whether a model's weights fit a device's free memory, checked before any is uploaded so that
// a model too large fails at once with both numbers instead of an allocation error half-way.
#pragma once

#include <cstdint>
#include <string>

namespace flow2 {

struct DeviceMemory {
  std::string device;      // "NVIDIA H100 80GB HBM3 (cuda:0)"
  uint64_t available = 0;  // bytes new allocations can still get
  uint64_t total = 0;
};

// Throws flow2::Error, saying how much the weights need and how much is free, unless `needed`
// bytes fit in `memory.available`.
void check_weights_fit(uint64_t needed, const DeviceMemory& memory);

}  // namespace flow2
