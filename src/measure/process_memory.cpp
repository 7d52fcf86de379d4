#include "measure/process_memory.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace flow2::measure {
namespace {

// A "Key:   1234 kB" line of /proc/self/status, in bytes.
int64_t status_kilobytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t length = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, length, key) == 0 && line.size() > length && line[length] == ':') {
      return std::stoll(line.substr(length + 1)) * 1024;
    }
  }
  return 0;
}

}  // namespace

int64_t rss_bytes() {
  return status_kilobytes("VmRSS");
}

int64_t peak_rss_bytes() {
  return status_kilobytes("VmHWM");
}

bool reset_peak_rss() {
  std::FILE* file = std::fopen("/proc/self/clear_refs", "w");
  if (!file) return false;
  const bool written = std::fputs("5", file) >= 0;
  return std::fclose(file) == 0 && written;
}

}  // namespace flow2::measure
