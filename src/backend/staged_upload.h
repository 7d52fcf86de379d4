// Staged uploads: bytes for device memory pass through a few host buffers that the device can
// copy from directly (pinned memory on CUDA). Host threads fill one buffer while the device
// copies earlier ones, so reading the source and the transfer overlap, and the source (usually a
// memory-mapped checkpoint) never gets a second full copy on the host.
//
// The device side is the StagingBuffers interface: the CUDA backend implements it with pinned
// buffers, a copy stream and events (backend/cuda/cuda_upload.h); the tests with plain memory.
// This file holds no CUDA code, so the chunking is tested on every machine.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace flow2 {

// Host buffers that a device copies from, each reused only once the copy queued from it has read
// it.
class StagingBuffers {
 public:
  virtual ~StagingBuffers() = default;
  virtual int count() const = 0;
  virtual size_t capacity() const = 0;  // bytes of each buffer
  virtual std::byte* data(int buffer) = 0;
  // Blocks until the transfer last queued from `buffer` has read it.
  virtual void wait_until_free(int buffer) = 0;
  // Queues a copy of the first `bytes` bytes of `buffer` to device address `destination`.
  virtual void transfer(int buffer, void* destination, size_t bytes) = 0;
};

// Writes bytes [offset, offset + size) of the destination's final contents into `out`. Called
// from several threads at once, for disjoint ranges.
using StageFill = std::function<void(std::byte* out, size_t offset, size_t size)>;

struct CopyOptions {
  // Bytes of a live MappedFile are read from its file (pread) rather than copied from the pages
  // of the mapping.
  bool read_files = true;
  // Otherwise each piece's pages of a memory-mapped source are mapped in one call
  // (MADV_POPULATE_READ) before the copy.
  bool prefault = true;
};

// A fill that copies `source` as it is.
StageFill copy_fill(std::span<const std::byte> source, const CopyOptions& options = {});

// One piece of a chunk, filled by one thread.
struct StagePiece {
  size_t offset = 0;
  size_t size = 0;
};

// Splits `bytes` into at most `parts` pieces of nearly equal size whose boundaries are multiples
// of `granule` (so a converting fill sees whole elements or blocks) and of 4 KiB where the
// granule divides 4 KiB (whole pages of the source); pieces are at least `min_piece` bytes
// unless the whole is smaller.
std::vector<StagePiece> split_pieces(size_t bytes, size_t granule, int parts, size_t min_piece);

// A fixed set of threads that runs the tasks of one call at a time; the calling thread works
// too. Idle threads sleep.
class TaskPool {
 public:
  explicit TaskPool(int threads);
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs task(0) .. task(count - 1) and returns once all have finished; an exception from a
  // task is rethrown here (the first one, after the others have finished).
  void run(size_t count, const std::function<void(size_t)>& task);

 private:
  void work();
  void worker_loop();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;  // counts run() calls; a change wakes the workers
  bool stop_ = false;
  size_t busy_ = 0;  // workers still in the current run
  const std::function<void(size_t)>* task_ = nullptr;
  size_t count_ = 0;
  std::atomic<size_t> next_{0};
  std::exception_ptr error_;
};

class StagedUploader {
 public:
  // Pieces smaller than this are not worth a thread's wake-up.
  static constexpr size_t kMinPiece = size_t{1} << 20;

  StagedUploader(StagingBuffers& buffers, int threads, size_t min_piece = kMinPiece);

  // Sends `bytes` bytes to `destination` through the buffers: chunks of up to one buffer, each
  // filled by the thread pool in pieces and then transferred; the next chunk is filled while the
  // earlier ones are in flight. Chunk boundaries are multiples of `granule` (which must fit in a
  // buffer). When this returns `fill` has produced every byte (what it reads may go) and every
  // transfer is queued; the caller orders the device's later work after them.
  void upload(void* destination, size_t bytes, size_t granule, const StageFill& fill);
  void upload(void* destination, std::span<const std::byte> source) {
    upload(destination, source.size(), 1, copy_fill(source));
  }

 private:
  StagingBuffers& buffers_;
  TaskPool pool_;
  size_t min_piece_;
  int next_buffer_ = 0;  // buffers are taken in turn: the oldest transfer is waited for first
};

}  // namespace flow2
