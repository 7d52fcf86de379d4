// Block-quantized matrices in the GPU's split layout (cuda_split_layout.h): the repacking of
// ggml blocks at upload, done by the upload's staging threads row by row into the pinned
// buffers (no extra host or device copy of the weight), and the way back for to_host.
#include "backend/cuda/cuda_split_upload.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_split_layout.h"
#include "backend/cuda/cuda_upload.h"
#include "flow2/error.h"
#include "quant/k_scales.h"

namespace flow2 {
namespace cuda {
namespace {

// Element j of a Q4_0/Q4_1 block's 16 code bytes: j < 16 is the low nibble of byte j, j + 16
// its high nibble.
int ggml_q4_code(const uint8_t* q, int j) {
  return j < 16 ? q[j] & 0x0f : q[j - 16] >> 4;
}

// 32 codes in split order (element j in byte j / 2, low nibble first).
template <typename Code>
void pack_nibbles(Code code, uint8_t* out) {
  for (int t = 0; t < 16; ++t) {
    out[t] = static_cast<uint8_t>(code(2 * t) | (code(2 * t + 1) << 4));
  }
}

// Writes one row (k elements of `blocks` in `source`'s layout) as `target`'s split row.
void write_split_row(DType source, DType target, const uint8_t* blocks, int64_t k, uint8_t* out) {
  const WeightFormat format = weight_format(target, "upload_weight");
  const SplitLayout layout = split_layout(format);
  uint8_t* params = out + split_code_bytes(format, k);
  const int64_t block_count = k / static_cast<int64_t>(dtype_block_elements(source));
  const size_t block_bytes = dtype_size(source);
  for (int64_t b = 0; b < block_count; ++b) {
    const uint8_t* block = blocks + b * block_bytes;
    switch (source) {
      case DType::Q8_0:  // f16 d, int8 q[32]
        std::memcpy(out + 32 * b, block + 2, 32);
        std::memcpy(params + 2 * b, block, 2);
        break;
      case DType::Q4_0:  // f16 d, q[16]
        pack_nibbles([&](int j) { return ggml_q4_code(block + 2, j); }, out + 16 * b);
        std::memcpy(params + 2 * b, block, 2);
        break;
      case DType::Q4_1:  // f16 d, f16 m, q[16]
        pack_nibbles([&](int j) { return ggml_q4_code(block + 4, j); }, out + 16 * b);
        // As Q4_A64 the two blocks of a group hold the same d and m: the first one's go.
        if (target == DType::Q4_1) {
          std::memcpy(params + 4 * b, block, 4);
        } else if (b % 2 == 0) {
          std::memcpy(params + 4 * (b / 2), block, 4);
        }
        break;
      case DType::Q4_A64:  // f16 d, f16 m, q[32] already in split order
        std::memcpy(out + 32 * b, block + 4, 32);
        std::memcpy(params + 4 * b, block, 4);
        break;
      case DType::Q4_K: {  // f16 d, f16 dmin, scales[12], q[128]: 8 sub-blocks of 32
        uint16_t bits[2];
        std::memcpy(bits, block, 4);
        const float d = f16_to_f32(bits[0]), dmin = f16_to_f32(bits[1]);
        for (int sub = 0; sub < 8; ++sub) {
          // Sub-blocks 2p and 2p + 1 are the low and high nibbles of bytes 32p .. 32p + 31.
          const uint8_t* q = block + 16 + 32 * (sub / 2);
          const int shift = sub % 2 == 0 ? 0 : 4;
          pack_nibbles([&](int j) { return (q[j] >> shift) & 0x0f; }, out + 16 * (8 * b + sub));
          int scale = 0, minimum = 0;
          k_scale_and_min(sub, block + 4, &scale, &minimum);
          // The decoder's d * scale and dmin * minimum: exact in float32 (17 bits at most).
          const float pair[2] = {d * static_cast<float>(scale),
                                 -(dmin * static_cast<float>(minimum))};
          std::memcpy(params + 8 * (8 * b + sub), pair, 8);
        }
        break;
      }
      default:
        fail("upload_weight: {} has no split layout", dtype_name(source));
    }
  }
  const int64_t used =
      split_code_bytes(format, k) + k / layout.group * static_cast<int64_t>(layout.param_bytes);
  std::memset(out + used, 0, static_cast<size_t>(split_row_bytes(format, k) - used));
}

// Whether every pair of blocks (2i, 2i + 1) of every row of a Q4_1 matrix has the same d and m:
// MLX's groups of 64 loaded as Q4_1 blocks of 32 (mlx_quantization.h).
bool pairs_share_parameters(const HostTensor& host) {
  const int64_t rows = host.shape[0], k = host.shape[1];
  if (rows == 0 || k == 0 || k % 64 != 0) return false;
  const size_t block_bytes = dtype_size(DType::Q4_1);
  const size_t row_bytes = static_cast<size_t>(k / 32) * block_bytes;
  const auto* bytes = reinterpret_cast<const uint8_t*>(host.bytes.data());
  std::atomic<bool> shared{true};
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    if (!shared.load(std::memory_order_relaxed)) continue;  // a GGUF Q4_1 fails at once
    const uint8_t* row = bytes + static_cast<size_t>(r) * row_bytes;
    for (int64_t g = 0; g < k / 32; g += 2) {
      if (std::memcmp(row + g * block_bytes, row + (g + 1) * block_bytes, 4) != 0) {
        shared.store(false, std::memory_order_relaxed);
        break;
      }
    }
  }
  return shared.load();
}

}  // namespace

std::optional<DType> split_weight_dtype(const HostTensor& host) {
  if (host.shape.size() != 2 || !is_quantized(host.dtype)) return std::nullopt;
  if (host.shape[1] % static_cast<int64_t>(dtype_block_elements(host.dtype)) != 0) {
    return std::nullopt;  // blocks across rows: not a layout any file has
  }
  switch (host.dtype) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q4_A64:
      return host.dtype;
    case DType::Q4_1:
      return pairs_share_parameters(host) ? DType::Q4_A64 : DType::Q4_1;
    default:
      return std::nullopt;
  }
}

uint64_t split_weight_bytes(const HostTensor& host, DType dtype) {
  const WeightFormat format = weight_format(dtype, "upload_weight");
  return static_cast<uint64_t>(host.shape.at(0)) *
         static_cast<uint64_t>(split_row_bytes(format, host.shape.at(1)));
}

StageFill split_fill(const HostTensor& host, DType dtype) {
  check(host.shape.size() == 2 && host.bytes.size() == dtype_bytes(host.dtype, host.numel()),
        "tensor '{}': {} bytes for {} {} elements", host.name, host.bytes.size(), host.numel(),
        dtype_name(host.dtype));
  const int64_t k = host.shape[1];
  const size_t row_bytes = static_cast<size_t>(split_row_bytes(weight_format(dtype, "upload"), k));
  const size_t source_row_bytes = dtype_bytes(host.dtype, static_cast<uint64_t>(k));
  const auto* source = reinterpret_cast<const uint8_t*>(host.bytes.data());
  const DType from = host.dtype;
  // `host` (its bytes and their owner) outlives the upload that calls the fill.
  return [=](std::byte* out, size_t offset, size_t size) {
    for (size_t done = 0; done < size; done += row_bytes) {
      const size_t row = (offset + done) / row_bytes;
      write_split_row(from, dtype, source + row * source_row_bytes, k,
                      reinterpret_cast<uint8_t*>(out + done));
    }
  };
}

}  // namespace cuda

Tensor CudaBackend::upload_split(const HostTensor& host, DType dtype) {
  const size_t bytes = cuda::split_weight_bytes(host, dtype);
  Tensor tensor = allocate(dtype, host.shape, bytes);
  const cuda::WeightFormat format = weight_format(dtype, "upload_weight");
  if (cuda::split_layout(format).code_bits == 4) four_bit_matrices_ = true;
  const auto row_bytes = static_cast<size_t>(cuda::split_row_bytes(format, host.shape[1]));
  uploader().upload(tensor.data(), bytes, row_bytes, cuda::split_fill(host, dtype));
  return tensor;
}

std::vector<float> CudaBackend::split_to_host(const Tensor& tensor) {
  const cuda::WeightFormat format = weight_format(tensor.dtype(), "to_host");
  const int64_t n = tensor.rows(), k = tensor.cols();
  std::vector<float> values(static_cast<size_t>(n * k));
  if (values.empty()) return values;
  // Decoded on the device a slice of rows at a time (the kernels that embeddings use), so a
  // large table needs no float32 copy of its own on the GPU.
  constexpr int64_t kSliceElements = int64_t{16} << 20;
  const int64_t slice = std::clamp<int64_t>(kSliceElements / k, 1, n);
  auto* buffer = static_cast<float*>(context_->allocate(static_cast<size_t>(slice * k) * 4));
  cudaStream_t stream = context_->stream();
  for (int64_t first = 0; first < n; first += slice) {
    const int64_t count = std::min(slice, n - first);
    cuda::decode_split_rows_f32(format, tensor.data(), k, nullptr, first, count, buffer, false,
                                stream);
    cuda::check_cuda(
        cudaMemcpyAsync(values.data() + first * k, buffer, static_cast<size_t>(count * k) * 4,
                        cudaMemcpyDeviceToHost, stream),
        "to_host");
  }
  context_->release(buffer);
  context_->synchronize();
  return values;
}

}  // namespace flow2
