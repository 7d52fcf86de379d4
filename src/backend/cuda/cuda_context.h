// What every CUDA tensor and op of one backend shares: the device, one stream, the cuBLAS
// handle, reusable scratch buffers, a pinned staging ring for small host inputs, and the
// recording of decoding steps as CUDA graphs (cuda_step_graph.h).
//
// Tensors free their memory with cudaFreeAsync on the stream through a shared_ptr to this
// context, so a tensor may outlive the backend object that made it. During a step, memory comes
// from an arena that the next step reuses, staged inputs land at fixed addresses, and frees of
// other memory wait until the step's queued work is on the stream.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/cuda/cuda_op_profile.h"
#include "backend/cuda/cuda_step_graph.h"

namespace flow2::cuda {

// Throws flow2::Error with `what` and CUDA's message unless `status` is cudaSuccess.
void check_cuda(cudaError_t status, const char* what);
void check_cublas(cublasStatus_t status, const char* what);

class Context {
 public:
  explicit Context(int device);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  const std::string& device_name() const { return device_name_; }
  int multiprocessors() const { return multiprocessors_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }

  // Stream-ordered device memory from the device's pool (kept cached between forwards).
  void* allocate(size_t bytes);
  void release(void* pointer);
  // A device copy of small host data (ids, positions, frequencies), valid for work queued on
  // the stream until the ring wraps around (the wrap waits for the stream).
  const void* stage(const void* data, size_t bytes);
  template <typename T>
  const T* stage(std::span<const T> values) {
    return static_cast<const T*>(stage(values.data(), values.size_bytes()));
  }
  // Scratch space for one op at a time (ops run in stream order, so reuse is safe); `slot`
  // 0..2 picks independent buffers.
  void* scratch(int slot, size_t bytes);
  // Memory for an op to stage its one-row output as int16 groups (set_x16_groups), inside a step
  // only: from the step's arena, so every staging of a step has its own address. The GEMVs read
  // a staging through L1, which other multiprocessors' writes do not update, and under
  // programmatic launch a kernel may launch (L1 is made fresh) before earlier kernels finish
  // loading lines: a buffer written twice in a step could be read stale. Null outside a step or
  // where the arena is full (it grows before the next step).
  void* x16_groups_buffer(size_t bytes);
  int64_t x16_stagings() const { return x16_stagings_; }  // buffers given out (tests)
  void synchronize();

  // --- steps (Backend::begin_step): ops hand their work to `submit`, which runs it at once
  // outside a step and queues it, with its signature, inside one.
  void begin_step();
  void end_step();
  void abort_step();
  bool in_step() const { return graphs_.recording(); }
  template <typename... Args>
  void submit(const char* op, Launch launch, Args... words) {
    rounded_ = {};  // the op may write the rounded matrix's source (see holds_rounded)
    if (graphs_.recording()) {
      graphs_.add(op, std::move(launch), words...);
    } else if (profile_) {
      profile_->begin(op, stream_);
      launch(stream_);
      profile_->end(stream_);
    } else {
      launch(stream_);
    }
  }
  const StepGraphs& graphs() const { return graphs_; }

  // A GEMM rounds its float32 x to 16 bits into scratch slot 0 (cuda_matmul.cpp); an op whose
  // output a GEMM reads next may write that rounding itself (add_rms_norm, gated_activation,
  // prompt attention). The copy stays valid until the next op is submitted, memory is freed,
  // a step begins, ends or is dropped, or host data is copied in (forget_rounded), so the GEMMs
  // that follow on the same x (a layer's q, k and v; gate and up) find it there: set_rounded
  // records it after the writer's submit, holds_rounded asks before the next GEMM's. Only this
  // context's ops are seen: tensors must not be written through another backend meanwhile.
  void set_rounded(const void* source, int64_t elements, bool half, const void* copy) {
    rounded_ = {source, elements, half ? Form::kF16 : Form::kBf16, copy};
  }
  void forget_rounded() { rounded_ = {}; }
  bool holds_rounded(const void* source, int64_t elements, bool half, const void* copy) const {
    return rounded_.source == source && rounded_.elements == elements &&
           rounded_.form == (half ? Form::kF16 : Form::kBf16) && rounded_.copy == copy &&
           source != nullptr;
  }
  // The same record for one row staged as int16 groups for the GEMVs (cuda::x16_groups_bytes),
  // which an op writing a GEMV's x may leave in x16_groups_buffer; x16_groups gives it for
  // `source` (null where there is none).
  void set_x16_groups(const void* source, int64_t elements, const void* copy) {
    rounded_ = {source, elements, Form::kInt16Groups, copy};
  }
  const void* x16_groups(const void* source, int64_t elements) const {
    const bool held = rounded_.source == source && rounded_.elements == elements &&
                      rounded_.form == Form::kInt16Groups && source != nullptr;
    return held ? rounded_.copy : nullptr;
  }
  // Zeroed counters for kernels whose last block finishes the work (decode attention): such a
  // kernel counts its blocks in one counter per work item and sets it back to zero when done.
  static constexpr int64_t kCompletionCounters = 4096;
  int* completion_counters() const { return completion_counters_; }
  // Largest device memory held at once: the pool's high-water mark plus the fixed buffers.
  size_t peak_bytes() const;

 private:
  void* pool_allocate(size_t bytes);
  void* arena_allocate(size_t bytes);
  bool in_arena(const void* pointer) const;

  int device_;
  std::string device_name_;
  int multiprocessors_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  static constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
  void* cublas_workspace_ = nullptr;
  static constexpr size_t kRingBytes = 4 << 20;
  void* host_ring_ = nullptr;
  void* device_ring_ = nullptr;
  size_t ring_offset_ = 0;
  static constexpr int kLargeStageSlot = 3;  // stage() of more than the ring holds
  static constexpr int kScratchSlots = 4;
  int64_t x16_stagings_ = 0;
  void* scratch_[kScratchSlots] = {};
  size_t scratch_bytes_[kScratchSlots] = {};

  enum class Form { kBf16, kF16, kInt16Groups };
  struct Rounded {
    const void* source = nullptr;
    int64_t elements = 0;
    Form form = Form::kBf16;
    const void* copy = nullptr;
  };
  Rounded rounded_;

  StepGraphs graphs_;
  std::unique_ptr<OpProfile> profile_;  // FLOW2_CUDA_PROFILE
  // Step memory: a bump arena (grown between steps to the last step's need) ...
  char* arena_ = nullptr;
  size_t arena_bytes_ = 0, arena_used_ = 0, arena_wanted_ = 0;
  std::vector<void*> deferred_frees_;
  // ... and staged inputs: two pinned host buffers, used in turn (an event says when the copy
  // from one has run), copied to one device buffer before each step's graph.
  static constexpr size_t kStepStageBytes = 4 << 20;
  void* step_host_[2] = {};
  cudaEvent_t step_copied_[2] = {};
  int step_buffer_ = 0;
  void* step_device_ = nullptr;
  size_t step_staged_ = 0;
  int* completion_counters_ = nullptr;
  size_t fixed_bytes_ = 0;  // ring, step buffers and arena, outside the pool
};

}  // namespace flow2::cuda
