// Time per CUDA op (FLOW2_CUDA_PROFILE=1): each launch that Context::submit runs at once is
// bracketed by two events; the table (calls, total and mean time, share) goes to stderr when the
// context ends. Steps recorded as graphs run as one launch, so per-op times need
// FLOW2_CUDA_GRAPHS=0 as well; the events add a little time of their own.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace flow2::cuda {

class OpProfile {
 public:
  // A profile when FLOW2_CUDA_PROFILE is set to something other than "0", else null.
  static bool wanted();
  ~OpProfile();

  void begin(const char* op, cudaStream_t stream);
  void end(cudaStream_t stream);
  // Resolves the pending events and prints the table to `out`.
  void report(std::FILE* out);

 private:
  struct Pending {
    const char* op;
    cudaEvent_t start, stop;
  };
  struct Total {
    int64_t calls = 0;
    double milliseconds = 0;
  };
  void resolve();

  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> spare_;
  std::map<std::string, Total> totals_;
};

}  // namespace flow2::cuda
