// Decoding steps replayed as CUDA graphs.
//
// Launching some 700 small kernels one by one costs more host and GPU time per token than the
// weights take to stream. While a step is recorded, the backend's ops queue their launches here
// with a signature: the op and every argument that is not staged data (pointers, sizes,
// scalars). At the end of the step, a signature seen before replays its instantiated graph; a
// new one is captured from the queued launches first. Inputs that change from one step to the
// next (token ids, positions, the cache length) travel as staged data at fixed addresses, and
// the step's tensors come from an arena reset at every step, so the steps of one generation
// share one signature.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

namespace flow2::cuda {

using Launch = std::function<void(cudaStream_t)>;

// One word of a signature from any pointer, integer, float or enum argument.
template <typename T>
uint64_t signature_word(T value) {
  if constexpr (std::is_pointer_v<T>) {
    return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(value));
  } else if constexpr (std::is_floating_point_v<T>) {
    double wide = static_cast<double>(value);
    uint64_t bits;
    std::memcpy(&bits, &wide, sizeof bits);
    return bits;
  } else {
    return static_cast<uint64_t>(value);
  }
}

class StepGraphs {
 public:
  StepGraphs() = default;
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  bool recording() const { return recording_; }
  void begin();
  // Queues `launch`; `op` (a string literal) and `words` form its part of the signature.
  template <typename... Args>
  void add(const char* op, Launch launch, Args... words) {
    signature_.push_back(signature_word(op));
    (signature_.push_back(signature_word(words)), ...);
    signature_.push_back(~uint64_t{0});  // separates ops with different argument counts
    launches_.push_back(std::move(launch));
  }
  // Runs the recorded step on the stream: the cached graph of its signature, or a new capture
  // (ops that cannot be captured run one by one). Ends the recording. `capturable` false: a
  // step whose memory will move (the arena grows) runs op by op without a capture.
  void run(cudaStream_t stream, bool capturable);
  // Drops a step that failed half-way.
  void discard();
  // Forgets every graph (the arena or the staging buffer moved).
  void clear();

  // Counters for tests and benchmarks.
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  // Kernel-to-kernel edges of the last captured graph that programmatic dependent launch relaxes
  // (cuda_launch.cuh): 0 with PDL off, or if capture dropped the launch attribute.
  int64_t programmatic_edges() const { return programmatic_edges_; }

 private:
  struct Entry {
    std::vector<uint64_t> signature;
    cudaGraphExec_t exec = nullptr;  // null: the step could not be captured
    uint64_t last_used = 0;
  };
  Entry* find();
  Entry& capture(cudaStream_t stream);
  void run_eagerly(cudaStream_t stream);

  bool recording_ = false;
  std::vector<uint64_t> signature_;
  std::vector<Launch> launches_;
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  int64_t captures_ = 0, replays_ = 0, programmatic_edges_ = 0;
  static constexpr size_t kMaxGraphs = 8;
};

}  // namespace flow2::cuda
