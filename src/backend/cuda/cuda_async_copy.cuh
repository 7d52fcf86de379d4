// Asynchronous 16-byte copies from global to shared memory (cp.async, sm_80 and later): a block
// fills the next tile while it computes on the current one, without holding the data in
// registers on the way.
#pragma once

#include <cstdint>

namespace flow2::cuda {

// Copies 16 bytes from `source` to `destination` (both 16-byte aligned), or writes 16 zero bytes
// when `inside` is false (then `source` is not read, but must still be a valid address).
__device__ inline void copy_16_async(void* destination, const void* source, bool inside) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(destination));
  const int bytes = inside ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(source),
               "r"(bytes));
}

// Closes the group of copies issued since the last commit.
__device__ inline void commit_copies() {
  asm volatile("cp.async.commit_group;\n" ::);
}

// Waits until at most `kPending` committed groups are still in flight (this thread's copies).
template <int kPending>
__device__ inline void wait_copies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

}  // namespace flow2::cuda
