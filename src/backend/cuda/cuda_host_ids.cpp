#include "backend/cuda/cuda_host_ids.h"

#include "backend/cuda/cuda_context.h"
#include "flow2/error.h"

namespace flow2::cuda {

HostIdRing::~HostIdRing() {
  for (Slot& slot : slots_) {
    if (slot.done) {
      cudaEventSynchronize(slot.done);
      cudaEventDestroy(slot.done);
    }
    if (slot.host) cudaFreeHost(slot.host);
  }
}

int64_t HostIdRing::copy(const int32_t* device, int64_t count, cudaStream_t stream) {
  const int64_t ticket = next_ticket_++;
  Slot& slot = slots_[ticket % kSlots];
  if (!slot.done) check_cuda(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming), "ids");
  if (count > slot.capacity) {
    // The slot's last copy may still be writing the old buffer.
    check_cuda(cudaEventSynchronize(slot.done), "ids");
    if (slot.host) check_cuda(cudaFreeHost(slot.host), "cudaFreeHost");
    slot.host = nullptr;
    slot.capacity = 0;
    check_cuda(cudaMallocHost(reinterpret_cast<void**>(&slot.host),
                              static_cast<size_t>(count) * sizeof(int32_t)),
               "cudaMallocHost");
    slot.capacity = count;
  }
  if (count > 0) {
    check_cuda(cudaMemcpyAsync(slot.host, device, static_cast<size_t>(count) * sizeof(int32_t),
                               cudaMemcpyDeviceToHost, stream),
               "ids to the host");
  }
  check_cuda(cudaEventRecord(slot.done, stream), "ids to the host");
  slot.count = count;
  slot.ticket = ticket;
  return ticket;
}

std::vector<int32_t> HostIdRing::wait(int64_t ticket) {
  check(ticket >= 0 && ticket < next_ticket_, "chosen_ids: no choice has ticket {}", ticket);
  const Slot& slot = slots_[ticket % kSlots];
  check(slot.ticket == ticket,
        "chosen_ids: ticket {} was overwritten: only the last {} choices stay readable", ticket,
        kSlots);
  check_cuda(cudaEventSynchronize(slot.done), "chosen ids");
  return std::vector<int32_t>(slot.host, slot.host + slot.count);
}

}  // namespace flow2::cuda
