// Weights to the GPU through pinned staging buffers (backend/staged_upload.h): host threads copy
// or convert the memory-mapped checkpoint into a free pinned buffer while a copy stream moves the
// earlier buffers to the device, so reading the page cache overlaps the PCIe transfer and no
// full host copy of the model is made. The context's stream waits for each weight's copies
// (an event), so any op queued after an upload sees the weight.
//
// Settings (environment, read once per backend): FLOW2_UPLOAD_THREADS (host threads; default
// min(12, cores)), FLOW2_UPLOAD_BUFFERS (default 4), FLOW2_UPLOAD_BUFFER_MB (default 16; less
// while no weight is that large), FLOW2_UPLOAD_PREAD=0 (copy from the mapping instead of
// reading its file), FLOW2_UPLOAD_PREFAULT=0 (then no MADV_POPULATE_READ before a piece), and
// FLOW2_UPLOAD_STAGING=0 for the unstaged path: one cudaMemcpyAsync from pageable memory per
// weight, as before the staging existed, to compare.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "backend/cuda/cuda_context.h"
#include "backend/device_memory_check.h"
#include "backend/staged_upload.h"
#include "flow2/tensor.h"

namespace flow2 {

class WeightStore;

namespace cuda {

// The dtype a weight takes on the device (CudaBackend::upload_weight's rule): matrices stay as
// the checkpoint holds them where a kernel reads that form (F32, BF16, F16, Q8_0, Q4_0, Q4_1),
// other matrices (K-quants) become bf16, and vectors (norms, biases) float32.
DType device_weight_dtype(const HostTensor& host);
// Bytes the device form of `host` takes.
uint64_t device_weight_bytes(const HostTensor& host);
// Bytes the device forms of every floating-point tensor of `store` take together.
uint64_t device_weights_bytes(const WeightStore& store);
// What new allocations of `context` can get: the device's free memory plus what its memory pool
// holds without using it (a model freed before the next is loaded leaves its memory there).
DeviceMemory device_memory(const Context& context);

struct UploadSettings {
  bool staging = true;
  int threads = 12;
  int buffers = 4;
  // Smaller chunks start the copies sooner. 16 GB of bf16 on an H100 (PCIe 5, 16 cores), best of
  // 4 warm loads: 0.33 s with 16 MB buffers and 8 threads, 0.30 s with 12 threads, 0.38 s with
  // 64 MB buffers, 0.55 s with 8 buffers of 16 MB, 1.65 s unstaged.
  size_t buffer_bytes = size_t{16} << 20;
  bool read_files = true;  // pread from a mapped checkpoint's file (CopyOptions)
  bool prefault = true;
  // The defaults, overridden by the FLOW2_UPLOAD_* variables.
  static UploadSettings from_environment();
};

class WeightUploader {
 public:
  explicit WeightUploader(std::shared_ptr<Context> context,
                          UploadSettings settings = UploadSettings::from_environment());
  ~WeightUploader();
  WeightUploader(const WeightUploader&) = delete;
  WeightUploader& operator=(const WeightUploader&) = delete;

  // Writes `host` into `tensor` (allocated on the context's stream) in `tensor`'s dtype: host's
  // own bytes, or converted to float32 / bf16 by the host threads. When this returns the host
  // bytes have been read; work queued on the context's stream afterwards sees the weight.
  void upload(const HostTensor& host, Tensor& tensor);
  // The same for `bytes` bytes that `fill` produces, in pieces whose offsets are multiples of
  // `granule` (for a fill that repacks or converts blocks).
  void upload(void* destination, size_t bytes, size_t granule, const StageFill& fill);

  const UploadSettings& settings() const { return settings_; }

 private:
  class PinnedBuffers;
  void start(size_t bytes);
  void upload_unstaged(void* destination, size_t bytes, const StageFill& fill,
                       const void* pageable_source);

  std::shared_ptr<Context> context_;
  UploadSettings settings_;
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t allocated_ = nullptr;  // the allocation, on the context's stream
  cudaEvent_t copied_ = nullptr;     // the last copy of a weight, on the copy stream
  std::unique_ptr<PinnedBuffers> buffers_;
  std::unique_ptr<StagedUploader> staged_;  // after buffers_: destroyed first
};

}  // namespace cuda
}  // namespace flow2
