// Pinned host slots that chosen token ids are copied into without waiting (pipelined decoding,
// Backend::choose_into): copy t lands in slot t % kSlots and is ready once its event has passed,
// so the host reads token N while step N + 1 already runs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace flow2::cuda {

class HostIdRing {
 public:
  static constexpr int kSlots = 4;

  HostIdRing() = default;
  ~HostIdRing();
  HostIdRing(const HostIdRing&) = delete;
  HostIdRing& operator=(const HostIdRing&) = delete;

  // Queues a copy of `count` ids from device memory on `stream`; returns its ticket.
  int64_t copy(const int32_t* device, int64_t count, cudaStream_t stream);
  // Waits for copy `ticket`; an error if its slot holds a later copy since.
  std::vector<int32_t> wait(int64_t ticket);

 private:
  struct Slot {
    int32_t* host = nullptr;  // pinned
    int64_t capacity = 0, count = 0;
    int64_t ticket = -1;
    cudaEvent_t done = nullptr;
  };
  Slot slots_[kSlots];
  int64_t next_ticket_ = 0;
};

}  // namespace flow2::cuda
