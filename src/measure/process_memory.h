// Resident memory of this process from /proc/self/status, and resetting its peak so that each
// model's peak is its own.
#pragma once

#include <cstdint>

namespace flow2::measure {

int64_t rss_bytes();       // VmRSS; 0 when /proc is unavailable
int64_t peak_rss_bytes();  // VmHWM; 0 when /proc is unavailable
// Writes 5 to /proc/self/clear_refs (Linux 4.0+), which sets VmHWM to the current VmRSS.
// Returns false when the kernel refused.
bool reset_peak_rss();

}  // namespace flow2::measure
