// Launching flow2's kernels with programmatic dependent launch (PDL, compute capability 9.0+).
//
// Decoding runs hundreds of short kernels back to back; between two of them the GPU idles while
// the first one's last blocks drain and the second one's blocks start. With PDL the next
// kernel's blocks may start while the previous kernel still runs: they do their prologue (index
// math, a GEMV's first weight loads) and then wait in wait_for_prior_kernels() until the
// previous kernel has completed and its writes are visible.
//
// Rules for every kernel launched through launch_kernel:
// - Call wait_for_prior_kernels() in every thread before reading anything an earlier kernel
//   wrote (activations, the KV cache) and before writing any global memory: a write before it
//   could change data that the previous kernel still reads. Before it a kernel may read weights,
//   which nothing on the GPU writes after their upload (a copy, which the next kernel waits for
//   in full, see below), so no Backend op may hand a GEMV or a norm a "weight" that a kernel
//   wrote; and staged inputs (ids, positions, lengths), which only copies write: a step's are
//   copied before its graph's first kernel starts, an op's are copied right before its launch,
//   and in both cases the kernels that come later start after the copy completed (decode
//   attention reads its sequences' lengths before the wait). Other kernels read staged inputs
//   after the wait.
// - Every thread executes the wait, on every path, early exits included (flow2's kernels wait
//   at the top, the GEMVs after their first loads). This is what makes the chain transitive:
//   kernel N+1 only waits for kernel N, and N's completion implies N-1's only because N waited.
// - let_next_kernel_launch() lets the next kernel's blocks start once every block of this
//   kernel has called it or exited. flow2's kernels call it first thing: it is safe before the
//   wait, because the next kernel waits for this one's full completion whatever the trigger
//   says, and since it launches only when all blocks of this kernel have started, its waiting
//   blocks never take a multiprocessor from a block of this kernel. Early is what hides the gap
//   (without a trigger the next kernel starts only as this one's last warps end).
//
// What holds around other work on the stream (CUDA 12.3+ runtime API; driver_types.h):
// - The relaxation applies only between two kernels: a kernel that follows a copy, a memset, an
//   event wait or a graph launch waits for it in full, as without PDL. A copy, memset or event
//   record after a kernel waits for that kernel's full completion (only a kernel launched with
//   the attribute may start early), so to_host and the staging copies see finished results.
// - cuBLAS kernels keep their own launches: a flow2 kernel after one waits for its completion
//   in wait_for_prior_kernels(), and a cuBLAS kernel after a flow2 kernel waits for it as its
//   own launch requires.
// - Stream capture (cuda_step_graph) turns a launch with the attribute after a kernel into a
//   programmatic edge (cudaGraphDependencyTypeProgrammatic from the upstream node's
//   cudaGraphKernelNodePortProgrammatic port); after any other node the edge stays a full one.
//   StepGraphs counts the programmatic edges of each capture.
// - A kernel launched without the attribute (PDL off, or an older GPU) treats both calls as
//   no-ops: griddepcontrol waits for nothing when no grid is a prerequisite.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "backend/cuda/cuda_launch.h"

namespace flow2::cuda {

// Blocks the calling thread until the kernels this one depends on (the previous kernel in the
// stream) have completed and their memory operations are visible (griddepcontrol.wait, as
// cudaGridDependencySynchronize). The memory clobber keeps the compiler from moving loads and
// stores of this kernel across it.
__device__ __forceinline__ void wait_for_prior_kernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel in the stream launch before this one ends, once every block has called
// this or exited (griddepcontrol.launch_dependents, as cudaTriggerProgrammaticLaunchCompletion).
// It says nothing about memory: the next kernel still waits for this one to complete.
__device__ __forceinline__ void let_next_kernel_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// The start of a kernel with no prologue worth overlapping: the trigger, then the wait.
__device__ __forceinline__ void begin_after_prior_kernels() {
  let_next_kernel_launch();
  wait_for_prior_kernels();
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...), with programmatic stream serialization
// where programmatic_launch_enabled() says so. Errors are left for check_launch, as with <<<>>>.
template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  if (programmatic_launch_enabled()) {
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  // The error also becomes cudaGetLastError's, which check_launch reports.
  (void)cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace flow2::cuda
