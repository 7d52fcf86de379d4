#include "backend/cuda/cuda_upload.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_split_upload.h"
#include "flow2/error.h"
#include "flow2/weight_store.h"

namespace flow2 {
namespace cuda {
namespace {

int64_t environment_number(const char* name, int64_t fallback, int64_t low, int64_t high) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  check(*end == '\0' && value >= low && value <= high, "{}={} is not a number in {}..{}", name,
        text, low, high);
  return value;
}

// Writes converted elements of `host`: pieces start at whole blocks of its dtype.
StageFill converting_fill(const HostTensor& host, DType to) {
  const size_t out_size = dtype_size(to);
  return [&host, to, out_size](std::byte* out, size_t offset, size_t size) {
    const size_t first = offset / out_size;
    const size_t count = size / out_size;
    const std::byte* source = host.bytes.data() + dtype_bytes(host.dtype, first);
    if (to == DType::F32) {
      convert_to_f32(host.dtype, source, count, reinterpret_cast<float*>(out));
      return;
    }
    // bf16 through a small float32 slice that stays in cache (a whole number of blocks).
    constexpr size_t kSlice = 8192;
    thread_local std::vector<float> values(kSlice);
    auto* bits = reinterpret_cast<uint16_t*>(out);
    for (size_t done = 0; done < count; done += kSlice) {
      const size_t n = std::min(kSlice, count - done);
      convert_to_f32(host.dtype, source + dtype_bytes(host.dtype, done), n, values.data());
      for (size_t i = 0; i < n; ++i) bits[done + i] = f32_to_bf16(values[i]);
    }
  };
}

}  // namespace

DType device_weight_dtype(const HostTensor& host) {
  if (auto split = split_weight_dtype(host)) return *split;
  const bool matrix = host.shape.size() == 2;
  const bool kept = host.dtype == DType::F32 || host.dtype == DType::BF16 ||
                    host.dtype == DType::F16 || host.dtype == DType::Q8_0 ||
                    host.dtype == DType::Q4_0 || host.dtype == DType::Q4_1;
  if (matrix && kept) return host.dtype;
  return matrix ? DType::BF16 : DType::F32;  // K-quants: bf16 until a GEMV reads their blocks
}

uint64_t device_weight_bytes(const HostTensor& host) {
  if (auto split = split_weight_dtype(host)) return split_weight_bytes(host, *split);
  return dtype_bytes(device_weight_dtype(host), static_cast<uint64_t>(host.numel()));
}

uint64_t device_weights_bytes(const WeightStore& store) {
  uint64_t bytes = 0;
  for (const auto& [name, tensor] : store.tensors()) {
    if (is_floating(tensor.dtype)) bytes += device_weight_bytes(tensor);
  }
  return bytes;
}

DeviceMemory device_memory(const Context& context) {
  check_cuda(cudaSetDevice(context.device()), "cudaSetDevice");
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  cudaMemPool_t pool = nullptr;
  uint64_t reserved = 0, used = 0;
  check_cuda(cudaDeviceGetDefaultMemPool(&pool, context.device()), "cudaDeviceGetDefaultMemPool");
  check_cuda(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved),
             "cudaMemPoolGetAttribute");
  check_cuda(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used),
             "cudaMemPoolGetAttribute");
  DeviceMemory memory;
  memory.device = fmt::format("{} (cuda:{})", context.device_name(), context.device());
  memory.available = free_bytes + (reserved > used ? reserved - used : 0);
  memory.total = total_bytes;
  return memory;
}

UploadSettings UploadSettings::from_environment() {
  UploadSettings settings;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  settings.staging = environment_number("FLOW2_UPLOAD_STAGING", 1, 0, 1) != 0;
  settings.threads =
      static_cast<int>(environment_number("FLOW2_UPLOAD_THREADS", std::min(cores, 12), 1, 256));
  settings.buffers =
      static_cast<int>(environment_number("FLOW2_UPLOAD_BUFFERS", settings.buffers, 1, 64));
  settings.buffer_bytes =
      static_cast<size_t>(environment_number(
          "FLOW2_UPLOAD_BUFFER_MB", static_cast<int64_t>(settings.buffer_bytes >> 20), 1, 4096))
      << 20;
  settings.read_files = environment_number("FLOW2_UPLOAD_PREAD", 1, 0, 1) != 0;
  settings.prefault = environment_number("FLOW2_UPLOAD_PREFAULT", 1, 0, 1) != 0;
  return settings;
}

// Pinned host buffers copied on the copy stream; an event per buffer marks its last copy.
class WeightUploader::PinnedBuffers final : public StagingBuffers {
 public:
  PinnedBuffers(int count, size_t capacity, cudaStream_t stream)
      : capacity_(capacity), stream_(stream) {
    for (int i = 0; i < count; ++i) {
      void* data = nullptr;
      const cudaError_t status = cudaHostAlloc(&data, capacity, cudaHostAllocDefault);
      if (status != cudaSuccess) {
        release();
        check_cuda(status, "cudaHostAlloc (weight staging buffers)");
      }
      data_.push_back(static_cast<std::byte*>(data));
      cudaEvent_t event = nullptr;
      check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
      copied_.push_back(event);
      queued_.push_back(false);
    }
  }
  ~PinnedBuffers() override { release(); }

  int count() const override { return static_cast<int>(data_.size()); }
  size_t capacity() const override { return capacity_; }
  std::byte* data(int buffer) override { return data_[buffer]; }
  void wait_until_free(int buffer) override {
    if (queued_[buffer]) check_cuda(cudaEventSynchronize(copied_[buffer]), "weight staging");
    queued_[buffer] = false;
  }
  void transfer(int buffer, void* destination, size_t bytes) override {
    check_cuda(cudaMemcpyAsync(destination, data_[buffer], bytes, cudaMemcpyHostToDevice, stream_),
               "weight upload");
    check_cuda(cudaEventRecord(copied_[buffer], stream_), "weight staging");
    queued_[buffer] = true;
  }

 private:
  // The owner has synchronized the copy stream: no copy reads the buffers any more.
  void release() {
    for (std::byte* data : data_) cudaFreeHost(data);
    for (cudaEvent_t event : copied_) cudaEventDestroy(event);
    data_.clear();
    copied_.clear();
  }

  size_t capacity_;
  cudaStream_t stream_;
  std::vector<std::byte*> data_;
  std::vector<cudaEvent_t> copied_;
  std::vector<bool> queued_;
};

WeightUploader::WeightUploader(std::shared_ptr<Context> context, UploadSettings settings)
    : context_(std::move(context)), settings_(settings) {}

WeightUploader::~WeightUploader() {
  // Errors are ignored: a destructor cannot report them. The buffers go only after their copies.
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  staged_.reset();
  buffers_.reset();
  if (allocated_) cudaEventDestroy(allocated_);
  if (copied_) cudaEventDestroy(copied_);
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
}

// The stream, the events and the pinned buffers are made at the first staged upload, and the
// buffers sized by the uploads: a backend that never loads weights pays nothing, one that loads
// a small model (the tests make many) a few MB instead of the full buffers. Buffers grow (to the
// configured size at most) when a larger weight comes; the first weight of a large model, its
// embedding, is already larger than the buffers.
void WeightUploader::start(size_t bytes) {
  constexpr size_t kMinBuffer = size_t{1} << 20;
  const size_t wanted =
      std::min(settings_.buffer_bytes,
               std::max(kMinBuffer, (bytes + kMinBuffer - 1) / kMinBuffer * kMinBuffer));
  if (staged_ && buffers_->capacity() >= wanted) return;
  if (!copy_stream_) {
    check_cuda(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaEventCreateWithFlags(&allocated_, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming), "cudaEventCreate");
  }
  // Smaller buffers go once no copy reads them.
  check_cuda(cudaStreamSynchronize(copy_stream_), "weight staging");
  staged_.reset();
  buffers_.reset();
  buffers_ = std::make_unique<PinnedBuffers>(settings_.buffers, wanted, copy_stream_);
  staged_ = std::make_unique<StagedUploader>(*buffers_, settings_.threads);
}

void WeightUploader::upload(const HostTensor& host, Tensor& tensor) {
  const uint64_t bytes = tensor.nbytes();
  if (bytes == 0) return;
  if (tensor.dtype() == host.dtype) {
    check(host.bytes.size() == bytes, "tensor '{}': {} bytes for {} {} elements", host.name,
          host.bytes.size(), host.numel(), dtype_name(host.dtype));
    if (!settings_.staging) {
      upload_unstaged(tensor.data(), bytes, {}, host.bytes.data());
      return;
    }
    upload(tensor.data(), bytes, 1,
           copy_fill(host.bytes,
                     {.read_files = settings_.read_files, .prefault = settings_.prefault}));
    return;
  }
  check(tensor.dtype() == DType::F32 || tensor.dtype() == DType::BF16,
        "tensor '{}': no conversion from {} to {} at upload", host.name, dtype_name(host.dtype),
        dtype_name(tensor.dtype()));
  check(tensor.numel() == host.numel() &&
            host.bytes.size() == dtype_bytes(host.dtype, static_cast<uint64_t>(host.numel())),
        "tensor '{}': {} bytes for {} {} elements", host.name, host.bytes.size(), host.numel(),
        dtype_name(host.dtype));
  const size_t granule = dtype_block_elements(host.dtype) * dtype_size(tensor.dtype());
  upload(tensor.data(), bytes, granule, converting_fill(host, tensor.dtype()));
}

void WeightUploader::upload(void* destination, size_t bytes, size_t granule,
                            const StageFill& fill) {
  if (bytes == 0) return;
  if (!settings_.staging) {
    upload_unstaged(destination, bytes, fill, nullptr);
    return;
  }
  start(bytes);
  // The destination was allocated in the context's stream order: the copies start after it.
  check_cuda(cudaEventRecord(allocated_, context_->stream()), "weight upload");
  check_cuda(cudaStreamWaitEvent(copy_stream_, allocated_, 0), "weight upload");
  auto order_after_copies = [this] {
    check_cuda(cudaEventRecord(copied_, copy_stream_), "weight upload");
    check_cuda(cudaStreamWaitEvent(context_->stream(), copied_, 0), "weight upload");
  };
  try {
    staged_->upload(destination, bytes, granule, fill);
  } catch (...) {
    // Copies already queued still write the destination: freeing it on the context's stream
    // must wait for them.
    order_after_copies();
    throw;
  }
  order_after_copies();
}

// The path before staging: a pageable copy on the context's stream, which has read the source
// when cudaMemcpyAsync returns. A converted weight goes through a host vector of its own.
void WeightUploader::upload_unstaged(void* destination, size_t bytes, const StageFill& fill,
                                     const void* pageable_source) {
  std::vector<std::byte> converted;
  if (!pageable_source) {
    converted.resize(bytes);
    fill(converted.data(), 0, bytes);
    pageable_source = converted.data();
  }
  check_cuda(cudaMemcpyAsync(destination, pageable_source, bytes, cudaMemcpyHostToDevice,
                             context_->stream()),
             "upload_weight");
  if (!converted.empty()) context_->synchronize();
}

}  // namespace cuda

void CudaBackend::prepare_weights(const WeightStore& store) {
  check_weights_fit(cuda::device_weights_bytes(store), cuda::device_memory(*context_));
}

cuda::WeightUploader& CudaBackend::uploader() {
  if (!uploader_) uploader_ = std::make_shared<cuda::WeightUploader>(context_);
  return *uploader_;
}

}  // namespace flow2
