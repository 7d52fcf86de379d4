// Products of a few rows of x (batched decoding, short prompts) with block-quantized split-layout
// weights (cuda_split_layout.h) on bf16 tensor cores, decoding the codes in registers: the
// weights are read once per call whatever the number of rows, where decoding to bf16 and a
// cuBLAS GEMM would write and read them again as bf16.
//
// A warp owns one or two tiles of 16 weight rows (the M of mma.sync m16n8k16) and every row of x
// (the N, in tiles of 8); a block's warps split k. Per 128 elements of a row (64 bytes of codes:
// four groups of 32) lane (g, t) loads the 16 bytes of group t of rows g and g + 8, so four lanes
// read 64 contiguous bytes of one row. The order of k inside an mma is free as long as A and B
// agree: of a word's nibbles n0..n7 (elements 8w..8w+7 of the group), the pairs (n0, n4), (n1, n5),
// (n2, n6), (n3, n7) become the A registers of two mma k-steps, each pair in one mask-or
// ((word >> 4i) & 0x000F000F | bf16 128.0: 128 + n exactly), then w = scale * (n) + offset
// in one bf16 fma after subtracting 128: so each weight is rounded to bf16 once, as the
// prompt path's decode to bf16 rounds it. x is first rounded to bf16 in the same order (each
// run of 8 as x0 x4 x1 x5 x2 x6 x3 x7, rows padded with zeros to a multiple of 8), so lane
// (g, t) loads its B registers for the 32 elements of its group as four 16-byte words.
//
// Q8_0 takes the same path with 16-byte pieces of 16 codes: each word's 4 codes are one k-step
// (pairs (c0, c1) and (c2, c3), x in its own order), a code becomes an exact float by the
// exponent trick (2^23 + 128 + c) and scale * c is rounded to bf16 once.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>

#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_split_codes.cuh"
#include "backend/cuda/cuda_split_layout.h"

namespace flow2::cuda {
namespace {

constexpr int kWarps = 8;         // per block
constexpr int kRowsPerWarp = 16;  // the mma's M

// Elements of one lane's 16-byte piece of a row: 32 4-bit or 16 8-bit codes; a step of the four
// lanes of a row covers 4 pieces.
template <WeightFormat F>
constexpr int piece_elements() {
  return split_piece_elements(F);
}

// x [m, k] float32 -> xb [padded, k] bf16, each run of 8 in the order the mma kernel reads:
// x0 x4 x1 x5 x2 x6 x3 x7 for 4-bit codes (kPermute), as it is for 8-bit ones.
template <bool kPermute>
__global__ void prepare_x_kernel(const float* __restrict__ x, uint4* __restrict__ xb, int64_t m,
                                 int64_t padded, int64_t k) {
  begin_after_prior_kernels();
  const int64_t runs = k / 8;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= padded * runs) return;
  const int64_t row = index / runs;
  uint4 packed = make_uint4(0, 0, 0, 0);
  if (row < m) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(x) + 2 * index);
    const float4 b = __ldg(reinterpret_cast<const float4*>(x) + 2 * index + 1);
    packed = kPermute ? make_uint4(pack_bf16(a.x, b.x), pack_bf16(a.y, b.y), pack_bf16(a.z, b.z),
                                   pack_bf16(a.w, b.w))
                      : make_uint4(pack_bf16(a.x, a.y), pack_bf16(a.z, a.w), pack_bf16(b.x, b.y),
                                   pack_bf16(b.z, b.w));
  }
  xb[index] = packed;
}

// The bf16 pair (n_i, n_{i+4}) of a word's nibbles as the weights scale * n + offset.
__device__ inline uint32_t decode_pair(uint32_t word, int i, __nv_bfloat162 scale,
                                       __nv_bfloat162 offset) {
  const uint32_t bits = ((word >> (4 * i)) & 0x000F000Fu) | 0x43004300u;  // 128 + n
  __nv_bfloat162 value = *reinterpret_cast<const __nv_bfloat162*>(&bits);
  value = __hsub2(value, __floats2bfloat162_rn(128.0f, 128.0f));  // exact: n
  value = __hfma2(value, scale, offset);
  return *reinterpret_cast<uint32_t*>(&value);
}

// The bf16 pair (c_2i, c_2i+1) of a word's four int8 codes, `flipped` holding them as c + 128,
// as the weights scale * c (exact in float32: an 8-bit times an 11-bit significand).
__device__ inline uint32_t decode_pair_int8(uint32_t flipped, int i, float scale) {
  const float low =
      __uint_as_float(0x4b000000u | ((flipped >> (16 * i)) & 0xffu)) - 8388736.0f;  // 2^23 + 128
  const float high =
      __uint_as_float(0x4b000000u | ((flipped >> (16 * i + 8)) & 0xffu)) - 8388736.0f;
  return pack_bf16(low * scale, high * scale);
}

// One step of a lane: the codes and (scale, offset) of group q32 of its 2R rows (g + 8i, in tiles
// of 16) and the B fragments of x for that group (rows g + 8 nt of xb); zeros past the end of
// the row (weights 0 * n + 0). The next step's stage loads while this one computes, so every
// load's latency hides behind a step of decoding and mma.
template <WeightFormat F, int R, int NT>
struct Stage {
  static constexpr int kXWords = piece_elements<F>() / 8;  // 16-byte words of xb per piece
  uint4 codes[2 * R];
  float2 params[2 * R];
  uint4 x[kXWords][NT];

  __device__ void load(const uint8_t* const (&rows)[2 * R], int64_t code_bytes, const uint4* xb_row,
                       int64_t runs, int64_t q32, int64_t groups) {
    if (q32 >= groups) {
#pragma unroll
      for (int i = 0; i < 2 * R; ++i) {
        codes[i] = make_uint4(0, 0, 0, 0);
        params[i] = make_float2(0.0f, 0.0f);
      }
#pragma unroll
      for (int w = 0; w < kXWords; ++w) {
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) x[w][nt] = make_uint4(0, 0, 0, 0);
      }
      return;
    }
    const int64_t group = q32 * piece_elements<F>() / split_layout(F).group;
#pragma unroll
    for (int i = 0; i < 2 * R; ++i) {
      codes[i] = load_once(reinterpret_cast<const uint4*>(rows[i]) + q32);
      params[i] = split_params<F>(rows[i] + code_bytes, group, StreamingLoad{});
    }
#pragma unroll
    for (int w = 0; w < kXWords; ++w) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        x[w][nt] = __ldg(xb_row + nt * 8 * runs + q32 * kXWords + w);
      }
    }
  }
};

__device__ inline __nv_bfloat162 broadcast_bf16(float value) {
  return __floats2bfloat162_rn(value, value);
}

// out[m, n] = x[m, k] W[n, k]^T (+ bias) for m <= 8 * NT; xb from prepare_x_kernel. A warp owns
// R tiles of 16 rows, which share every B fragment it loads.
template <WeightFormat F, int NT, int R>
__global__ void __launch_bounds__(kWarps * 32)
    mma_split_kernel(const uint8_t* __restrict__ weight, const uint4* __restrict__ xb,
                     const float* __restrict__ bias, float* __restrict__ out, int64_t m, int64_t n,
                     int64_t k, int warps_per_tile) {
  // xb comes from the kernel just before: nothing loads ahead of the wait.
  begin_after_prior_kernels();
  __shared__ float partial[kWarps][NT * 4][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int part = warp % warps_per_tile;
  const int64_t first =
      (static_cast<int64_t>(blockIdx.x) * (kWarps / warps_per_tile) + warp / warps_per_tile) *
      kRowsPerWarp * R;
  const int64_t row_bytes = split_row_bytes(F, k);
  const int64_t code_bytes = split_code_bytes(F, k);
  // Row g + 8i of the warp's rows; rows past the end read the last row (in bounds) and are not
  // written.
  const uint8_t* rows[2 * R];
#pragma unroll
  for (int i = 0; i < 2 * R; ++i) rows[i] = weight + std::min(first + g + 8 * i, n - 1) * row_bytes;
  const int64_t runs = k / 8;                      // 16-byte words of one row of xb
  const int64_t groups = k / piece_elements<F>();  // pieces of a row

  float acc[R][NT][4] = {};
  // Group q32 = 4 * step + t of 32 elements: lane (g, t) reads it for its rows. The next step's
  // codes and parameters load while this one computes.
  const int64_t stride = 4 * static_cast<int64_t>(warps_per_tile);
  int64_t q32 = 4 * static_cast<int64_t>(part) + t;
  const uint4* xb_row = xb + g * runs;
  Stage<F, R, NT> current, next;
  current.load(rows, code_bytes, xb_row, runs, q32, groups);
  for (; q32 - t < groups; q32 += stride) {  // the same trip count for the 4 lanes of a row
    next.load(rows, code_bytes, xb_row, runs, q32 + stride, groups);
    if constexpr (split_layout(F).code_bits == 8) {
#pragma unroll
      for (int w = 0; w < 4; ++w) {  // one k-step per word of 4 codes
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const uint32_t word_a = piece_word(current.codes[2 * r], w) ^ 0x80808080u;
          const uint32_t word_b = piece_word(current.codes[2 * r + 1], w) ^ 0x80808080u;
          const float scale_a = current.params[2 * r].x, scale_b = current.params[2 * r + 1].x;
          const uint32_t a[4] = {
              decode_pair_int8(word_a, 0, scale_a), decode_pair_int8(word_b, 0, scale_b),
              decode_pair_int8(word_a, 1, scale_a), decode_pair_int8(word_b, 1, scale_b)};
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const uint4& xw = current.x[w / 2][nt];
            mma_bf16(acc[r][nt], a, w % 2 == 0 ? xw.x : xw.z, w % 2 == 0 ? xw.y : xw.w);
          }
        }
      }
    } else {
      __nv_bfloat162 scale[2 * R], offset[2 * R];
#pragma unroll
      for (int i = 0; i < 2 * R; ++i) {
        scale[i] = broadcast_bf16(current.params[i].x);
        offset[i] = broadcast_bf16(current.params[i].y);
      }
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const uint4(&xw)[NT] = current.x[w];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
#pragma unroll
          for (int r = 0; r < R; ++r) {  // each tile's codes decoded once, used for every nt
            const uint32_t word_a = piece_word(current.codes[2 * r], w);
            const uint32_t word_b = piece_word(current.codes[2 * r + 1], w);
            const uint32_t a[4] = {
                decode_pair(word_a, 2 * h, scale[2 * r], offset[2 * r]),
                decode_pair(word_b, 2 * h, scale[2 * r + 1], offset[2 * r + 1]),
                decode_pair(word_a, 2 * h + 1, scale[2 * r], offset[2 * r]),
                decode_pair(word_b, 2 * h + 1, scale[2 * r + 1], offset[2 * r + 1])};
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
              mma_bf16(acc[r][nt], a, h == 0 ? xw[nt].x : xw[nt].z, h == 0 ? xw[nt].y : xw[nt].w);
            }
          }
        }
      }
    }
    current = next;
  }

  // C fragment: acc[r][nt] = (row g, x row 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1) of
  // tile r.
  auto store = [&](int r, int nt, int e, float value) {
    const int64_t row = first + 16 * r + g + (e >= 2 ? 8 : 0);
    const int64_t xrow = nt * 8 + 2 * t + (e & 1);
    if (row < n && xrow < m) out[xrow * n + row] = value + (bias ? bias[row] : 0.0f);
  };
  if (warps_per_tile == 1) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) store(r, nt, e, acc[r][nt][e]);
      }
    }
    return;
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    __syncthreads();  // the previous tile's sums have been read
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) partial[warp][nt * 4 + e][lane] = acc[r][nt][e];
    }
    __syncthreads();
    if (part == 0) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float total = 0.0f;
          for (int q = 0; q < warps_per_tile; ++q) total += partial[warp + q][nt * 4 + e][lane];
          store(r, nt, e, total);
        }
      }
    }
  }
}

// Warps of this kernel that fit on the GPU at once (registers limit it to a few blocks per
// multiprocessor).
template <WeightFormat F, int NT, int R>
int64_t resident_warps() {
  static const int64_t warps = [] {
    int blocks = 0;
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, mma_split_kernel<F, NT, R>, kWarps * 32,
                                                  0);
    return int64_t{std::max(blocks, 1)} * std::max(multiprocessor_count(), 1) * kWarps;
  }();
  return warps;
}

// Launches with k split over as many warps per tile as one wave of resident warps allows: a
// second, partly filled wave would leave most multiprocessors idle at the end, and fewer,
// longer warps keep more of a row's steps in one pipeline.
template <WeightFormat F, int NT, int R>
void launch(const void* weight, const uint4* xb, const float* bias, float* out, int64_t m,
            int64_t n, int64_t k, cudaStream_t stream) {
  const int64_t tiles = (n + kRowsPerWarp * R - 1) / (kRowsPerWarp * R);
  const int64_t steps = (k + 4 * piece_elements<F>() - 1) / (4 * piece_elements<F>());
  const int64_t capacity = resident_warps<F, NT, R>();
  int warps_per_tile = 1;
  while (warps_per_tile < kWarps && tiles * warps_per_tile * 2 <= capacity &&
         steps >= int64_t{4} * warps_per_tile) {
    warps_per_tile *= 2;
  }
  const int64_t tiles_per_block = kWarps / warps_per_tile;
  const dim3 grid(static_cast<unsigned>((tiles + tiles_per_block - 1) / tiles_per_block));
  launch_kernel(mma_split_kernel<F, NT, R>, grid, dim3(kWarps * 32), 0, stream,
                static_cast<const uint8_t*>(weight), xb, bias, out, m, n, k, warps_per_tile);
}

// Two row tiles per warp share each x load, where the matrix has rows enough to fill the GPU
// with them and the registers allow (FLOW2_CUDA_MMA_TILES=1|2 forces one, for measuring).
template <WeightFormat F, int NT>
void launch_nt(const void* weight, const uint4* xb, const float* bias, float* out, int64_t m,
               int64_t n, int64_t k, cudaStream_t stream) {
  static const int forced = [] {
    const char* value = std::getenv("FLOW2_CUDA_MMA_TILES");
    return value && *value ? std::atoi(value) : 0;
  }();
  bool pairs = NT <= 2 && (n + 2 * kRowsPerWarp - 1) / (2 * kRowsPerWarp) * kWarps >=
                              resident_warps<F, NT, 2>() * 3 / 4;
  if (forced) pairs = forced == 2;
  if (pairs) {
    launch<F, NT, 2>(weight, xb, bias, out, m, n, k, stream);
  } else {
    launch<F, NT, 1>(weight, xb, bias, out, m, n, k, stream);
  }
}

// Tiles of 8 rows of x: 1, 2 or 4 (the rows past m are zeros in xb).
constexpr int64_t x_tiles(int64_t m) {
  const int64_t tiles = (m + 7) / 8;
  return tiles <= 2 ? tiles : 4;
}

template <WeightFormat F>
void launch_tiles(const void* weight, const uint4* xb, const float* bias, float* out, int64_t m,
                  int64_t n, int64_t k, cudaStream_t stream) {
  switch (x_tiles(m)) {
    case 1:
      launch_nt<F, 1>(weight, xb, bias, out, m, n, k, stream);
      break;
    case 2:
      launch_nt<F, 2>(weight, xb, bias, out, m, n, k, stream);
      break;
    default:
      launch_nt<F, 4>(weight, xb, bias, out, m, n, k, stream);
      break;
  }
}

}  // namespace

bool mma_split_supported(WeightFormat format, int64_t m) {
  return is_split(format) && m >= 1 && m <= kMmaSplitMaxRows;
}

int64_t mma_split_scratch_bytes(int64_t m, int64_t k) {
  return x_tiles(m) * 8 * k * 2;
}

void mma_split(WeightFormat format, const void* weight, const float* x, void* scratch,
               const float* bias, float* out, int64_t m, int64_t n, int64_t k,
               cudaStream_t stream) {
  const int64_t padded = mma_split_scratch_bytes(m, k) / (2 * k);
  auto* xb = static_cast<uint4*>(scratch);
  const int64_t words = padded * k / 8;
  constexpr int kThreads = 256;
  const dim3 grid(static_cast<unsigned>((words + kThreads - 1) / kThreads));
  if (format == WeightFormat::Q8_0) {
    launch_kernel(prepare_x_kernel<false>, grid, dim3(kThreads), 0, stream, x, xb, m, padded, k);
  } else {
    launch_kernel(prepare_x_kernel<true>, grid, dim3(kThreads), 0, stream, x, xb, m, padded, k);
  }
  with_split_format(format, [&](auto f) {
    launch_tiles<decltype(f)::value>(weight, xb, bias, out, m, n, k, stream);
  });
  check_launch("matmul (block-quantized weights, tensor cores)");
}

}  // namespace flow2::cuda
