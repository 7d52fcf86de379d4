#include "backend/cuda/cuda_op_profile.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace flow2::cuda {
namespace {

// Pending pairs resolved at once: bounds the events alive, and waits rarely.
constexpr size_t kResolveEvery = 4096;

}  // namespace

bool OpProfile::wanted() {
  const char* value = std::getenv("FLOW2_CUDA_PROFILE");
  return value && *value && std::strcmp(value, "0") != 0;
}

OpProfile::~OpProfile() {
  resolve();
  for (cudaEvent_t event : spare_) cudaEventDestroy(event);
}

void OpProfile::begin(const char* op, cudaStream_t stream) {
  auto take = [&] {
    cudaEvent_t event = nullptr;
    if (!spare_.empty()) {
      event = spare_.back();
      spare_.pop_back();
    } else {
      cudaEventCreate(&event);
    }
    return event;
  };
  pending_.push_back({op, take(), take()});
  cudaEventRecord(pending_.back().start, stream);
}

void OpProfile::end(cudaStream_t stream) {
  cudaEventRecord(pending_.back().stop, stream);
  if (pending_.size() >= kResolveEvery) resolve();
}

void OpProfile::resolve() {
  if (pending_.empty()) return;
  cudaEventSynchronize(pending_.back().stop);
  for (const Pending& p : pending_) {
    float ms = 0;
    if (cudaEventElapsedTime(&ms, p.start, p.stop) == cudaSuccess) {
      Total& total = totals_[p.op];
      ++total.calls;
      total.milliseconds += ms;
    }
    spare_.push_back(p.start);
    spare_.push_back(p.stop);
  }
  pending_.clear();
}

void OpProfile::report(std::FILE* out) {
  resolve();
  std::vector<std::pair<std::string, Total>> rows(totals_.begin(), totals_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.milliseconds > b.second.milliseconds;
  });
  double all = 0;
  for (const auto& row : rows) all += row.second.milliseconds;
  std::fprintf(out, "flow2 CUDA profile: %-22s %9s %11s %9s %6s\n", "op", "calls", "total ms",
               "mean us", "share");
  for (const auto& [op, total] : rows) {
    std::fprintf(out, "flow2 CUDA profile: %-22s %9lld %11.3f %9.2f %5.1f%%\n", op.c_str(),
                 static_cast<long long>(total.calls), total.milliseconds,
                 1e3 * total.milliseconds / static_cast<double>(total.calls),
                 all > 0 ? 100.0 * total.milliseconds / all : 0.0);
  }
}

}  // namespace flow2::cuda
