// Prompt attention on bf16 tensor cores, flash-attention style: a block takes 64 or 32 queries of
// one head, streams the keys and values in tiles of 64 through shared memory, and keeps a
// running maximum, sum and output per query in registers; no [queries, keys] matrix exists
// anywhere.
//
// Four warps own 16 query rows each (64 queries); or, for short prompts, two pairs of warps own
// the same 32 rows and split each tile's keys (0-31 and 32-63), keeping separate running states
// that merge through shared memory at the end: the longest query tile, which bounds a short
// prompt's time, then walks its keys at twice the pace. Warps issue mma.sync m16n8k16 (bf16 in,
// float32 accumulate): S = Q K^T takes Q's fragments from registers (read once from q) and K's
// from shared memory by ldmatrix; the softmax runs on S's accumulators, which already have the
// layout of the A operand of P V, so P never leaves registers; V's fragments come from the same
// row-major tiles by ldmatrix's transposing form. Tiles are double-buffered: a bf16 cache is
// copied with cp.async into one buffer while the block computes on the other (a float32 cache
// is converted through registers). Shared-memory rows are padded by 8 elements, so that the 8
// rows an ldmatrix reads fall in different banks. Blocks of the last (longest, under the causal
// mask) query tiles are launched first, so that short ones fill the tail.
#include <cuda_bf16.h>

#include <cfloat>

#include "backend/cuda/cuda_async_copy.cuh"
#include "backend/cuda/cuda_cache_access.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"

namespace flow2::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kKeys = 64;  // per tile
// Key groups G: the block's warps split into G groups that own the same query rows (16 per
// warp, 64 / G per block) and take 64 / G keys of every tile each.
template <int G>
constexpr int kQueries = 16 * kWarps / G;  // per block
constexpr int kPad = 8;
constexpr float kLog2e = 1.4426950408889634f;

__device__ inline void store_four(__nv_bfloat16* at, float4 v) {
  auto* pairs = reinterpret_cast<__nv_bfloat162*>(at);
  pairs[0] = __floats2bfloat162_rn(v.x, v.y);
  pairs[1] = __floats2bfloat162_rn(v.z, v.w);
}

__device__ inline float quad_max(float value) {
  value = fmaxf(value, __shfl_xor_sync(0xffffffff, value, 1));
  return fmaxf(value, __shfl_xor_sync(0xffffffff, value, 2));
}

__device__ inline float quad_sum(float value) {
  value += __shfl_xor_sync(0xffffffff, value, 1);
  return value + __shfl_xor_sync(0xffffffff, value, 2);
}

// One buffer holds a tile of K rows, then a tile of V rows.
template <int D>
constexpr int kTileElements = kKeys*(D + kPad);

template <int D>
constexpr size_t shared_bytes() {
  return sizeof(__nv_bfloat16) * 2 * 2 * static_cast<size_t>(kTileElements<D>);
}

// Keys [first_key, first_key + kKeys) of one kv head into `buffer` (K, then V); rows at or past
// key_end are zeros, never stale cache. bf16 rows are copied asynchronously (commit and wait
// around this); float32 rows are rounded to bf16 on the way.
template <int D>
__device__ inline void fill_tile(__nv_bfloat16* buffer, const __nv_bfloat16* keys,
                                 const __nv_bfloat16* values, int64_t kv_width, int64_t first_key,
                                 int64_t key_end) {
  constexpr int kStride = D + kPad, kPieces = D / 8;  // 16-byte pieces per row
  for (int i = threadIdx.x; i < kKeys * kPieces; i += kWarps * 32) {
    const int r = i / kPieces, c = 8 * (i % kPieces);
    const bool inside = first_key + r < key_end;
    const int64_t offset = (inside ? first_key + r : 0) * kv_width + c;  // a valid address
    copy_16_async(buffer + r * kStride + c, keys + offset, inside);
    copy_16_async(buffer + kTileElements<D> + r * kStride + c, values + offset, inside);
  }
}

template <int D>
__device__ inline void fill_tile(__nv_bfloat16* buffer, const float* keys, const float* values,
                                 int64_t kv_width, int64_t first_key, int64_t key_end) {
  constexpr int kStride = D + kPad;
  for (int i = threadIdx.x; i < kKeys * D / 4; i += kWarps * 32) {
    const int r = i / (D / 4), c = 4 * (i % (D / 4));
    float4 k = make_float4(0.0f, 0.0f, 0.0f, 0.0f), v = k;
    if (first_key + r < key_end) {
      k = load_four(keys + (first_key + r) * kv_width + c);
      v = load_four(values + (first_key + r) * kv_width + c);
    }
    store_four(buffer + r * kStride + c, k);
    store_four(buffer + kTileElements<D> + r * kStride + c, v);
  }
}

// Grid: (heads, query tiles, batch), the last query tile first. Lane roles follow the mma
// fragment layouts: g = lane / 4 picks a row (and row + 8), t = lane % 4 a pair of columns.
template <int D, typename Cache, int G>
__global__ void __launch_bounds__(kWarps * 32) flash_kernel(AttentionParams p) {
  constexpr int kQueryWarps = kWarps / G, kGroupKeys = kKeys / G;
  begin_after_prior_kernels();
  constexpr int kStride = D + kPad;          // K and V rows in shared memory
  constexpr int kChunks = D / 16;            // k-steps of Q K^T
  constexpr int kDimTiles = D / 8;           // n-tiles of P V
  constexpr int kKeyTiles = kGroupKeys / 8;  // n-tiles of Q K^T
  extern __shared__ __align__(16) unsigned char shared[];
  auto* buffers = reinterpret_cast<__nv_bfloat16*>(shared);

  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  // ldmatrix roles: lanes 8i..8i+7 address row lane % 8 of matrix i = lane / 8.
  const int matrix = lane / 8, matrix_row = lane % 8;
  const int64_t b = blockIdx.z, head = blockIdx.x;
  const int64_t first_query = (int64_t{gridDim.y} - 1 - blockIdx.y) * kQueries<G>;
  const int64_t kv_head = head / (p.n_heads / p.n_kv_heads);
  const int64_t n_past = p.device_n_past ? p.device_n_past[b] : p.n_past;
  const int64_t q_width = p.n_heads * D, kv_width = p.n_kv_heads * D;
  // Warps w and w + kQueryWarps own query rows 16 w .. 16 w + 15 and keys `group` * kGroupKeys ..
  // of every tile.
  const int query_warp = warp % kQueryWarps, group = warp / kQueryWarps;
  const int row = query_warp * 16 + g;  // this lane's rows: row and row + 8 of the block

  // Q's A fragments straight from q (rows past the prompt are zeros).
  uint32_t q_fragments[kChunks][4];
  {
    const float* rows[2];
    bool inside[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t query = first_query + row + 8 * r;
      inside[r] = query < p.n_tokens;
      rows[r] = p.q + (b * p.n_tokens + (inside[r] ? query : 0)) * q_width + head * D + 2 * t;
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float2 pair = make_float2(0.0f, 0.0f);
          if (inside[r]) pair = __ldg(reinterpret_cast<const float2*>(rows[r] + 16 * c + 8 * half));
          q_fragments[c][2 * half + r] = pack_bf16(pair.x, pair.y);
        }
      }
    }
  }

  float out[kDimTiles][4] = {};
  float running_max[2] = {-INFINITY, -INFINITY}, running_sum[2] = {0.0f, 0.0f};
  const int64_t position[2] = {n_past + first_query + row, n_past + first_query + row + 8};
  const int64_t warp_first_position = n_past + first_query + query_warp * 16;
  const int64_t last_query = min(first_query + kQueries<G>, p.n_tokens) - 1;
  const int64_t key_end = n_past + last_query + 1;
  const int64_t key_begin =
      p.window > 0 ? max(int64_t{0}, n_past + first_query - p.window + 1) / kKeys * kKeys : 0;
  const Cache* keys = static_cast<const Cache*>(p.k) + b * p.capacity * kv_width + kv_head * D;
  const Cache* values = static_cast<const Cache*>(p.v) + b * p.capacity * kv_width + kv_head * D;
  const float log2_scale = p.scale * kLog2e;  // scores in base 2: exp2 is one instruction

  const int tiles = static_cast<int>((key_end - key_begin + kKeys - 1) / kKeys);
  fill_tile<D>(buffers, keys, values, kv_width, key_begin, key_end);
  commit_copies();
  for (int tile = 0; tile < tiles; ++tile) {
    const int64_t tile_key = key_begin + int64_t{tile} * kKeys;
    if (tile + 1 < tiles) {
      // The other buffer was last read in the previous iteration, before its closing barrier.
      fill_tile<D>(buffers + 2 * kTileElements<D> * ((tile + 1) & 1), keys, values, kv_width,
                   tile_key + kKeys, key_end);
      commit_copies();
      wait_copies<1>();
    } else {
      wait_copies<0>();
    }
    __syncthreads();
    // This warp's keys of the tile: rows `group` * kGroupKeys .. of K and V.
    const int64_t first_key = tile_key + group * kGroupKeys;
    const __nv_bfloat16* k_tile =
        buffers + 2 * kTileElements<D> * (tile & 1) + group * kGroupKeys * kStride;
    const __nv_bfloat16* v_tile = k_tile + kTileElements<D>;

    float scores[kKeyTiles][4] = {};
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
      for (int j = 0; j < kKeyTiles; j += 2) {
        // Matrices: keys 8j.. at d 16c and 16c + 8, then keys 8(j + 1).. at the same d.
        uint32_t k_fragments[4];
        load_matrices(k_fragments, k_tile + (8 * (j + matrix / 2) + matrix_row) * kStride + 16 * c +
                                       8 * (matrix % 2));
        mma_bf16(scores[j], q_fragments[c], k_fragments[0], k_fragments[1]);
        mma_bf16(scores[j + 1], q_fragments[c], k_fragments[2], k_fragments[3]);
      }
    }
    // Scale and mask: element e of tile j is key first_key + 8j + 2t + (e & 1) of row e / 2.
    // Tiles wholly before the warp's first query need no causal mask.
    const bool masked = p.window > 0 || first_key + kGroupKeys - 1 > warp_first_position;
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float score = scores[j][e] * log2_scale;
        if (masked) {
          const int64_t key = first_key + 8 * j + 2 * t + (e & 1);
          const int64_t query_position = position[e >> 1];
          const bool visible =
              key <= query_position && (p.window <= 0 || key > query_position - p.window);
          score = visible ? score : -INFINITY;
        }
        scores[j][e] = score;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], score);
      }
    }
    float base[2], correction[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float new_max = fmaxf(running_max[r], quad_max(tile_max[r]));
      base[r] = new_max == -INFINITY ? 0.0f : new_max;  // nothing visible yet: all weights 0
      correction[r] = exp2f(running_max[r] - base[r]);
      running_max[r] = new_max;
      running_sum[r] *= correction[r];
    }
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) {
      out[n][0] *= correction[0];
      out[n][1] *= correction[0];
      out[n][2] *= correction[1];
      out[n][3] *= correction[1];
    }
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        scores[j][e] = exp2f(scores[j][e] - base[e >> 1]);
        running_sum[e >> 1] += scores[j][e];
      }
    }
    // out += P V, 16 keys per k-step: score tiles 2s and 2s + 1 are the A fragment.
#pragma unroll
    for (int s = 0; s < kGroupKeys / 16; ++s) {
      const uint32_t a[4] = {pack_bf16(scores[2 * s][0], scores[2 * s][1]),
                             pack_bf16(scores[2 * s][2], scores[2 * s][3]),
                             pack_bf16(scores[2 * s + 1][0], scores[2 * s + 1][1]),
                             pack_bf16(scores[2 * s + 1][2], scores[2 * s + 1][3])};
#pragma unroll
      for (int n = 0; n < kDimTiles; n += 2) {
        // Matrices: keys 16s.. and 16s + 8.. at d 8n, then the same keys at d 8(n + 1).
        uint32_t v_fragments[4];
        load_matrices_transposed(
            v_fragments,
            v_tile + (16 * s + 8 * (matrix % 2) + matrix_row) * kStride + 8 * (n + matrix / 2));
        mma_bf16(out[n], a, v_fragments[0], v_fragments[1]);
        mma_bf16(out[n + 1], a, v_fragments[2], v_fragments[3]);
      }
    }
    __syncthreads();  // this buffer is refilled in the next iteration
  }

  // Merge the key groups: the second hands its state to the first through shared memory (the
  // buffers are free: the loop ended at a barrier). Each lane's values keep their fragment
  // places, so lanes exchange with the lane of the same role.
  static_assert(G == 1 || G == 2);
  constexpr int kState = 4 * kDimTiles + 4;  // out, running max and sum per lane
  float* exchange = reinterpret_cast<float*>(shared) + query_warp * kState * 32;
  if (G == 2 && group == 1) {
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) exchange[(4 * n + e) * 32 + lane] = out[n][e];
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      exchange[(4 * kDimTiles + r) * 32 + lane] = running_max[r];
      exchange[(4 * kDimTiles + 2 + r) * 32 + lane] = running_sum[r];
    }
  }
  if constexpr (G == 2) __syncthreads();
  if (group == 1) return;
  float own_scale[2] = {1.0f, 1.0f}, other_scale[2] = {0.0f, 0.0f};
#pragma unroll
  for (int r = 0; r < 2 * (G - 1); ++r) {
    const float other_max = exchange[(4 * kDimTiles + r) * 32 + lane];
    const float merged = fmaxf(running_max[r], other_max);  // finite: every query sees a key
    own_scale[r] = exp2f(running_max[r] - merged);
    other_scale[r] = exp2f(other_max - merged);
    running_sum[r] = running_sum[r] * own_scale[r] +
                     exchange[(4 * kDimTiles + 2 + r) * 32 + lane] * other_scale[r];
  }
#pragma unroll
  for (int n = 0; n < kDimTiles * (G - 1); ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      out[n][e] =
          out[n][e] * own_scale[e >> 1] + exchange[(4 * n + e) * 32 + lane] * other_scale[e >> 1];
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float inverse = 1.0f / quad_sum(running_sum[r]);  // every lane of the warp takes part
    const int64_t query = first_query + row + 8 * r;
    if (query >= p.n_tokens) continue;
    const int64_t offset = (b * p.n_tokens + query) * q_width + head * D + 2 * t;
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) {
      const float2 value = make_float2(out[n][2 * r] * inverse, out[n][2 * r + 1] * inverse);
      *reinterpret_cast<float2*>(p.out + offset + 8 * n) = value;
      if (p.out_bf16) {
        reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(p.out_bf16) + offset)[4 * n] =
            __floats2bfloat162_rn(value.x, value.y);
      }
    }
  }
}

template <int D, typename Cache, int G>
void launch_typed(const AttentionParams& p, cudaStream_t stream) {
  constexpr size_t bytes = shared_bytes<D>();
  if constexpr (bytes > 48 * 1024) {
    cudaFuncSetAttribute(flash_kernel<D, Cache, G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
  }
  const dim3 grid(static_cast<unsigned>(p.n_heads),
                  static_cast<unsigned>((p.n_tokens + kQueries<G> - 1) / kQueries<G>),
                  static_cast<unsigned>(p.batch));
  launch_kernel(flash_kernel<D, Cache, G>, grid, kWarps * 32, bytes, stream, p);
}

// Two key groups where blocks of 64 queries would leave multiprocessors idle or few blocks
// long (a 512-token prompt of 32 heads: 256 blocks, the last walking 8 tiles): H100, 26.3 us
// against 31.0 with one. Long prompts have blocks enough, and one group reads each tile for
// twice the queries (4096 tokens: 738 us against 850).
int key_groups(const AttentionParams& p) {
  if (p.key_groups == 1 || p.key_groups == 2) return static_cast<int>(p.key_groups);
  const int64_t blocks = p.batch * p.n_heads * ((p.n_tokens + 63) / 64);
  return blocks < int64_t{4} * multiprocessor_count() ? 2 : 1;
}

template <int D, typename Cache>
void launch_grouped(const AttentionParams& p, cudaStream_t stream) {
  if (key_groups(p) == 2) {
    launch_typed<D, Cache, 2>(p, stream);
  } else {
    launch_typed<D, Cache, 1>(p, stream);
  }
}

template <int D>
void launch(const AttentionParams& p, cudaStream_t stream) {
  if (p.bf16_cache) {
    launch_grouped<D, __nv_bfloat16>(p, stream);
  } else {
    launch_grouped<D, float>(p, stream);
  }
}

}  // namespace

bool flash_attention_supported(int64_t head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
}

void flash_attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.batch * p.n_tokens == 0) return;
  switch (p.head_dim) {
    case 16:
      launch<16>(p, stream);
      break;
    case 32:
      launch<32>(p, stream);
      break;
    case 64:
      launch<64>(p, stream);
      break;
    case 128:
      launch<128>(p, stream);
      break;
    default:
      return;  // flash_attention_supported said no
  }
  check_launch("flash attention");
}

}  // namespace flow2::cuda
