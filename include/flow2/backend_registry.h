// Every backend flow2 knows, whether this build and machine can run it, and why not: the list
// the benchmark and the report iterate so that a new backend shows up in them by itself.
#pragma once

#include <string>
#include <vector>

namespace flow2 {

struct BackendEntry {
  std::string name;  // as make_backend takes it
  bool is_gpu = false;
  bool available = false;
  std::string unavailable_reason;  // empty when available
};

std::vector<BackendEntry> registered_backends();

}  // namespace flow2
