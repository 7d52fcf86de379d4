// The split layout of block-quantized matrices on the GPU, and the kernels that read it.
//
// ggml blocks interleave a scale with 16 or 32 bytes of codes, and Q4_0/Q4_1 pair element j with
// element j + 16 in one byte; a GPU kernel reading them needs small, misaligned loads and a
// shuffle of every nibble. At upload (cuda_split_upload.cpp) each row becomes
//
//   codes   k / 2 bytes (4-bit: element j in byte j / 2, low nibble first) or k bytes (8-bit,
//           two's complement), in element order, so 16 bytes are one group of 32 4-bit codes
//   params  one entry per group of `group` elements, w = scale * q + offset:
//             Q8_0   f16 scale                          (offset 0)
//             Q4_0   f16 scale                          (offset -8 * scale, not stored)
//             Q4_1   f16 scale, f16 offset (= ggml's m)
//             Q4_A64 f16 scale, f16 offset per 64       (MLX's 4-bit layout: a Q4_1 matrix
//                                                        whose pairs of blocks share d and m)
//             Q4_K   f32 scale d * sc, f32 offset -dmin * m per sub-block of 32 (these
//                    products of an f16 and a 6-bit integer need up to 17 bits: not f16)
//   zeros   up to the next multiple of 16 bytes
//
// Rows start 16-byte aligned at row * split_row_bytes(format, k): an op that knows only the row
// width (embedding) finds every row, and a row's codes and parameters are next to each other.
// Every value decodes exactly as flow2's CPU decoders compute it.
#pragma once

#include <cstdint>
#include <type_traits>

#include "backend/cuda/cuda_kernels.h"

namespace flow2::cuda {

struct SplitLayout {
  int code_bits = 0;    // 4 or 8
  int group = 1;        // elements that share one (scale, offset)
  int param_bytes = 0;  // bytes of one group's parameters
};

constexpr bool is_split(WeightFormat format) {
  return format == WeightFormat::Q8_0 || format == WeightFormat::Q4_0 ||
         format == WeightFormat::Q4_1 || format == WeightFormat::Q4_A64 ||
         format == WeightFormat::Q4_K;
}

constexpr SplitLayout split_layout(WeightFormat format) {
  switch (format) {
    case WeightFormat::Q8_0:
      return {8, 32, 2};
    case WeightFormat::Q4_0:
      return {4, 32, 2};
    case WeightFormat::Q4_1:
      return {4, 32, 4};
    case WeightFormat::Q4_A64:
      return {4, 64, 4};
    case WeightFormat::Q4_K:
      return {4, 32, 8};
    default:
      return {};
  }
}

// Calls f with std::integral_constant<WeightFormat, F> for a split format F; nothing for others
// (callers check is_split first).
template <typename Fn>
void with_split_format(WeightFormat format, Fn&& f) {
  switch (format) {
    case WeightFormat::Q8_0:
      f(std::integral_constant<WeightFormat, WeightFormat::Q8_0>{});
      break;
    case WeightFormat::Q4_0:
      f(std::integral_constant<WeightFormat, WeightFormat::Q4_0>{});
      break;
    case WeightFormat::Q4_1:
      f(std::integral_constant<WeightFormat, WeightFormat::Q4_1>{});
      break;
    case WeightFormat::Q4_A64:
      f(std::integral_constant<WeightFormat, WeightFormat::Q4_A64>{});
      break;
    case WeightFormat::Q4_K:
      f(std::integral_constant<WeightFormat, WeightFormat::Q4_K>{});
      break;
    default:
      break;
  }
}

// Bytes of one row's codes: a multiple of 16 (k is a multiple of the group).
constexpr int64_t split_code_bytes(WeightFormat format, int64_t k) {
  return k * split_layout(format).code_bits / 8;
}

constexpr int64_t split_row_bytes(WeightFormat format, int64_t k) {
  const SplitLayout layout = split_layout(format);
  const int64_t bytes = split_code_bytes(format, k) + k / layout.group * layout.param_bytes;
  return (bytes + 15) / 16 * 16;
}

// Codes of one 16-byte load: 32 4-bit or 16 8-bit elements.
constexpr int split_piece_elements(WeightFormat format) {
  return 128 / split_layout(format).code_bits;
}

// out[m, n] = x[m, k] * W[n, k]^T (+ bias) for each segment's split-layout W, m <= kGemvMaxRows;
// x 16-byte aligned (cuda_split_gemv.cu). x16_groups: null, or x staged as int16 by the op that
// wrote it (cuda_kernels.h).
void gemv_split(WeightFormat format, const GemvSegments& segments, const float* x,
                const void* x16_groups, int64_t m, int64_t k, cudaStream_t stream);
// gemv_split of q, k and v (segments 0, 1 and 2) with rope_and_cache's work in the epilogue
// (gemv_rope_cache).
void gemv_split_rope(WeightFormat format, const GemvSegments& qkv, const float* x,
                     const void* x16_groups, int64_t m, int64_t k, const RopeCacheParams& rope,
                     cudaStream_t stream);
// out[m, n] = act(x gate^T) * (x up^T) for split-layout gate and up [n, k], as gemv_gated
// (out_x16 there: m 1, n a multiple of 128).
void gemv_gated_split(WeightFormat format, const void* gate, const void* up, const float* x,
                      const void* x16_groups, float* out, void* out_x16, int64_t m, int64_t n,
                      int64_t k, ActivationKind activation, cudaStream_t stream);

// Rows of x up to which split-layout weights multiply on tensor cores, decoding the codes
// in registers (cuda_split_mma.cu), instead of being decoded to bf16 for cuBLAS.
constexpr int64_t kMmaSplitMaxRows = 32;
bool mma_split_supported(WeightFormat format, int64_t m);
// Device bytes of the scratch mma_split needs for x (bf16, rows padded).
int64_t mma_split_scratch_bytes(int64_t m, int64_t k);
// out[m, n] = x[m, k] * W[n, k]^T (+ bias) for m <= kMmaSplitMaxRows; x 16-byte aligned; scratch
// of mma_split_scratch_bytes, 16-byte aligned.
void mma_split(WeightFormat format, const void* weight, const float* x, void* scratch,
               const float* bias, float* out, int64_t m, int64_t n, int64_t k, cudaStream_t stream);

// Rows of a split-layout W decoded (cuda_split_decode.cu): row `ids[i]`, or `first + i` when ids
// is null, for i < count, into out[i, :] as float32 (accumulate: added to out) or bf16.
void decode_split_rows_f32(WeightFormat format, const void* weight, int64_t k, const int32_t* ids,
                           int64_t first, int64_t count, float* out, bool accumulate,
                           cudaStream_t stream);
void decode_split_rows_bf16(WeightFormat format, const void* weight, int64_t k, int64_t first,
                            int64_t count, void* out, cudaStream_t stream);

}  // namespace flow2::cuda
