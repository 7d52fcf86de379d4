// The CUDA context of a backend: device, stream, cuBLAS, memory pool, scratch and staging.
#include "backend/cuda/cuda_context.h"

#include <cstring>
#include <limits>

#include "backend/cuda/cuda_kernels.h"
#include "flow2/error.h"

namespace flow2::cuda {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    fail("CUDA error in {}: {} ({})", what, cudaGetErrorString(status), cudaGetErrorName(status));
  }
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    fail("cuBLAS error in {}: {}", what, cublasGetStatusString(status));
  }
}

void check_launch(const char* what) {
  check_cuda(cudaGetLastError(), what);
}

Context::Context(int device) : device_(device) {
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp properties{};
  check_cuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
  device_name_ = properties.name;
  multiprocessors_ = properties.multiProcessorCount;
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  // Memory freed between forward passes stays in the pool instead of going back to the driver.
  cudaMemPool_t pool = nullptr;
  check_cuda(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
  uint64_t threshold = std::numeric_limits<uint64_t>::max();
  check_cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
             "cudaMemPoolSetAttribute");
  check_cublas(cublasCreate(&cublas_), "cublasCreate");
  check_cublas(cublasSetStream(cublas_, stream_), "cublasSetStream");
  // GEMMs with 16-bit outputs (prompts' gate and up products) would otherwise be allowed to add
  // split-K partial sums in the output's precision: on an H100 that moved a 1024-long product
  // by 1.4% where rounding the float32 sum once moves it by 0.4% at most.
  check_cublas(cublasSetMathMode(cublas_, CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION),
               "cublasSetMathMode");
  // cuBLAS's own default workspace is smaller than the 32 MiB its documentation recommends for
  // Hopper, which limits the GEMM kernels it may pick for prompts.
  check_cuda(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes), "cudaMalloc");
  check_cublas(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes),
               "cublasSetWorkspace");
  check_cuda(cudaMallocHost(&host_ring_, kRingBytes), "cudaMallocHost");
  check_cuda(cudaMalloc(&device_ring_, kRingBytes), "cudaMalloc");
  for (int i = 0; i < 2; ++i) {
    check_cuda(cudaMallocHost(&step_host_[i], kStepStageBytes), "cudaMallocHost");
    check_cuda(cudaEventCreateWithFlags(&step_copied_[i], cudaEventDisableTiming),
               "cudaEventCreate");
  }
  check_cuda(cudaMalloc(&step_device_, kStepStageBytes), "cudaMalloc");
  const size_t counter_bytes = kCompletionCounters * sizeof(int);
  check_cuda(cudaMalloc(&completion_counters_, counter_bytes), "cudaMalloc");
  // On the context's stream (non-blocking: a legacy-stream memset would not be ordered before
  // its kernels).
  check_cuda(cudaMemsetAsync(completion_counters_, 0, counter_bytes, stream_), "cudaMemsetAsync");
  fixed_bytes_ = kRingBytes + kStepStageBytes + kCublasWorkspaceBytes + counter_bytes;
  if (OpProfile::wanted()) profile_ = std::make_unique<OpProfile>();
}

Context::~Context() {
  // Errors are ignored here: a destructor cannot report them and the process may be exiting.
  cudaSetDevice(device_);
  for (int slot = 0; slot < kScratchSlots; ++slot) {
    if (scratch_[slot]) cudaFreeAsync(scratch_[slot], stream_);
  }
  cudaStreamSynchronize(stream_);
  if (profile_) profile_->report(stderr);
  profile_.reset();
  graphs_.clear();
  cublasDestroy(cublas_);
  cudaFree(cublas_workspace_);
  cudaFree(device_ring_);
  cudaFreeHost(host_ring_);
  cudaFree(arena_);
  cudaFree(step_device_);
  cudaFree(completion_counters_);
  for (int i = 0; i < 2; ++i) {
    cudaFreeHost(step_host_[i]);
    cudaEventDestroy(step_copied_[i]);
  }
  cudaStreamDestroy(stream_);
}

void* Context::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (in_step()) {
    if (void* pointer = arena_allocate(bytes)) return pointer;
  }
  return pool_allocate(bytes);
}

void* Context::pool_allocate(size_t bytes) {
  void* pointer = nullptr;
  cudaError_t status = cudaMallocAsync(&pointer, bytes, stream_);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error state before reporting
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    fail("out of GPU memory on {}: {} bytes asked for, {} of {} bytes free", device_name_, bytes,
         free_bytes, total_bytes);
  }
  check_cuda(status, "cudaMallocAsync");
  return pointer;
}

void Context::release(void* pointer) {
  rounded_ = {};  // the memory may come back as another tensor
  if (!pointer || in_arena(pointer)) return;
  if (in_step()) {
    deferred_frees_.push_back(pointer);  // queued launches of this step may still use it
    return;
  }
  cudaFreeAsync(pointer, stream_);
}

// 256-byte aligned pieces of the arena; null when it is full (the caller takes pool memory and
// the arena grows before the next step).
void* Context::arena_allocate(size_t bytes) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  arena_wanted_ += rounded;
  if (arena_used_ + rounded > arena_bytes_) return nullptr;
  void* pointer = arena_ + arena_used_;
  arena_used_ += rounded;
  return pointer;
}

bool Context::in_arena(const void* pointer) const {
  const auto* p = static_cast<const char*>(pointer);
  return arena_ && p >= arena_ && p < arena_ + arena_bytes_;
}

void Context::begin_step() {
  rounded_ = {};  // the arena's memory comes back as this step's tensors
  if (arena_wanted_ > arena_bytes_) {
    // The last step outgrew the arena: a larger one, and graphs that point into it go.
    synchronize();
    graphs_.clear();
    check_cuda(cudaFree(arena_), "cudaFree");
    arena_ = nullptr;
    fixed_bytes_ -= arena_bytes_;
    arena_bytes_ = arena_wanted_ + arena_wanted_ / 4;
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&arena_), arena_bytes_), "cudaMalloc arena");
    fixed_bytes_ += arena_bytes_;
  }
  arena_used_ = 0;
  arena_wanted_ = 0;
  step_staged_ = 0;
  step_buffer_ ^= 1;
  // The copy out of this host buffer two steps ago must have run before it is written again.
  check_cuda(cudaEventSynchronize(step_copied_[step_buffer_]), "step staging");
  graphs_.begin();
}

void Context::end_step() {
  rounded_ = {};  // the step's queued writes of the rounding may not have run yet
  if (step_staged_ > 0) {
    check_cuda(cudaMemcpyAsync(step_device_, step_host_[step_buffer_], step_staged_,
                               cudaMemcpyHostToDevice, stream_),
               "step staging");
    check_cuda(cudaEventRecord(step_copied_[step_buffer_], stream_), "step staging");
  }
  try {
    graphs_.run(stream_, arena_wanted_ <= arena_bytes_);
  } catch (...) {
    abort_step();
    throw;
  }
  for (void* pointer : deferred_frees_) cudaFreeAsync(pointer, stream_);
  deferred_frees_.clear();
}

void Context::abort_step() {
  rounded_ = {};  // the dropped queue may have held the write the record points at
  graphs_.discard();
  for (void* pointer : deferred_frees_) cudaFreeAsync(pointer, stream_);
  deferred_frees_.clear();
}

size_t Context::peak_bytes() const {
  cudaMemPool_t pool = nullptr;
  uint64_t high = 0;
  if (cudaDeviceGetDefaultMemPool(&pool, device_) == cudaSuccess) {
    cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &high);
  }
  return static_cast<size_t>(high) + fixed_bytes_;
}

const void* Context::stage(const void* data, size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t rounded = (bytes + 255) / 256 * 256;
  if (in_step()) {
    check(step_staged_ + rounded <= kStepStageBytes,
          "a CUDA step staged more than {} bytes of inputs", kStepStageBytes);
    std::memcpy(static_cast<char*>(step_host_[step_buffer_]) + step_staged_, data, bytes);
    const void* device = static_cast<char*>(step_device_) + step_staged_;
    step_staged_ += rounded;
    return device;
  }
  if (rounded > kRingBytes) {
    // Too large for the ring (a prompt of a million tokens): a scratch buffer of its own.
    void* device = scratch(kLargeStageSlot, bytes);
    check_cuda(cudaMemcpyAsync(device, data, bytes, cudaMemcpyHostToDevice, stream_), "stage");
    check_cuda(cudaStreamSynchronize(stream_), "stage");  // the pageable source has been read
    return device;
  }
  if (ring_offset_ + rounded > kRingBytes) {
    check_cuda(cudaStreamSynchronize(stream_), "staging ring wrap");
    ring_offset_ = 0;
  }
  auto* host = static_cast<char*>(host_ring_) + ring_offset_;
  auto* device = static_cast<char*>(device_ring_) + ring_offset_;
  std::memcpy(host, data, bytes);
  check_cuda(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_), "stage");
  ring_offset_ += rounded;
  return device;
}

void* Context::scratch(int slot, size_t bytes) {
  if (bytes > scratch_bytes_[slot]) {
    // Inside a step, queued ops may still use the old buffer: release defers its free. The
    // new one comes from the pool, not the step arena: scratch outlives the step.
    release(scratch_[slot]);
    scratch_[slot] = pool_allocate(bytes);
    scratch_bytes_[slot] = bytes;
  }
  return scratch_[slot];
}

void* Context::x16_groups_buffer(size_t bytes) {
  void* buffer = in_step() ? arena_allocate(bytes) : nullptr;
  if (buffer) ++x16_stagings_;
  return buffer;
}

void Context::synchronize() {
  check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

}  // namespace flow2::cuda
