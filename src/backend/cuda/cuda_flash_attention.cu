// Prompt attention on bf16 tensor cores, flash-attention style: a block takes 64 queries of one
// head, streams the keys and values in tiles of 64 through shared memory, and keeps a running
// maximum, sum and output per query in registers; no [queries, keys] matrix exists anywhere.
//
// Each warp owns 16 query rows and issues mma.sync m16n8k16 (bf16 in, float32 accumulate):
// S = Q K^T takes Q's fragments from registers and K rows from shared memory; the softmax runs
// on S's accumulators, which already have the layout of the A operand of P V, so P never
// leaves registers; V is stored transposed so that its B fragments are single 32-bit loads.
// Shared-memory rows are padded by 8 elements: the 8 row groups of a fragment load then fall
// in different banks.
#include <cuda_bf16.h>

#include <cfloat>

#include "backend/cuda/cuda_cache_access.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"

namespace flow2::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kQueries = 16 * kWarps;  // per block
constexpr int kKeys = 64;              // per tile
constexpr int kPad = 8;

__device__ inline uint32_t load_pair(const __nv_bfloat16* at) {
  return *reinterpret_cast<const uint32_t*>(at);
}

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

template <int D>
constexpr size_t shared_bytes() {
  return sizeof(__nv_bfloat16) * (static_cast<size_t>(kQueries + kKeys) * (D + kPad) +
                                  static_cast<size_t>(D) * (kKeys + kPad));
}

// Grid: (query tiles, heads, batch). Lane roles follow the mma fragment layouts: g = lane / 4
// picks a row (and row + 8), t = lane % 4 a pair of columns.
template <int D, typename Cache>
__global__ void __launch_bounds__(kWarps * 32) flash_kernel(AttentionParams p) {
  begin_after_prior_kernels();
  constexpr int kStride = D + kPad;                // Q and K rows
  constexpr int kTransposedStride = kKeys + kPad;  // V^T rows
  constexpr int kChunks = D / 16;                  // k-steps of Q K^T
  constexpr int kDimTiles = D / 8;                 // n-tiles of P V
  constexpr int kKeyTiles = kKeys / 8;             // n-tiles of Q K^T
  extern __shared__ __align__(16) unsigned char shared[];
  auto* q_tile = reinterpret_cast<__nv_bfloat16*>(shared);
  __nv_bfloat16* k_tile = q_tile + kQueries * kStride;
  __nv_bfloat16* v_transposed = k_tile + kKeys * kStride;

  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t b = blockIdx.z, head = blockIdx.y, first_query = int64_t{blockIdx.x} * kQueries;
  const int64_t kv_head = head / (p.n_heads / p.n_kv_heads);
  const int64_t n_past = p.device_n_past ? p.device_n_past[b] : p.n_past;
  const int64_t q_width = p.n_heads * D, kv_width = p.n_kv_heads * D;

  for (int i = threadIdx.x; i < kQueries * D / 4; i += blockDim.x) {
    const int r = i / (D / 4), c = 4 * (i % (D / 4));
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (first_query + r < p.n_tokens) {
      v = __ldg(reinterpret_cast<const float4*>(p.q + (b * p.n_tokens + first_query + r) * q_width +
                                                head * D + c));
    }
    store_four(q_tile + r * kStride + c, v);
  }
  __syncthreads();
  const int row = warp * 16 + g;  // this lane's rows: row and row + 8 of the block
  uint32_t q_fragments[kChunks][4];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const __nv_bfloat16* at = q_tile + row * kStride + 16 * c + 2 * t;
    q_fragments[c][0] = load_pair(at);
    q_fragments[c][1] = load_pair(at + 8 * kStride);
    q_fragments[c][2] = load_pair(at + 8);
    q_fragments[c][3] = load_pair(at + 8 * kStride + 8);
  }

  float out[kDimTiles][4] = {};
  float running_max[2] = {-INFINITY, -INFINITY}, running_sum[2] = {0.0f, 0.0f};
  const int64_t position[2] = {n_past + first_query + row, n_past + first_query + row + 8};
  const int64_t last_query = min(first_query + kQueries, p.n_tokens) - 1;
  const int64_t key_end = n_past + last_query + 1;
  const int64_t key_begin =
      p.window > 0 ? max(int64_t{0}, n_past + first_query - p.window + 1) / kKeys * kKeys : 0;
  const Cache* keys = static_cast<const Cache*>(p.k) + b * p.capacity * kv_width + kv_head * D;
  const Cache* values = static_cast<const Cache*>(p.v) + b * p.capacity * kv_width + kv_head * D;

  for (int64_t first_key = key_begin; first_key < key_end; first_key += kKeys) {
    __syncthreads();  // the previous tile is no longer read
    for (int i = threadIdx.x; i < kKeys * D / 4; i += blockDim.x) {
      const int r = i / (D / 4), c = 4 * (i % (D / 4));
      float4 k = make_float4(0.0f, 0.0f, 0.0f, 0.0f), v = k;
      if (first_key + r < key_end) {  // rows past the end are zeros, never stale cache
        k = load_four(keys + (first_key + r) * kv_width + c);
        v = load_four(values + (first_key + r) * kv_width + c);
      }
      store_four(k_tile + r * kStride + c, k);
      v_transposed[(c + 0) * kTransposedStride + r] = __float2bfloat16_rn(v.x);
      v_transposed[(c + 1) * kTransposedStride + r] = __float2bfloat16_rn(v.y);
      v_transposed[(c + 2) * kTransposedStride + r] = __float2bfloat16_rn(v.z);
      v_transposed[(c + 3) * kTransposedStride + r] = __float2bfloat16_rn(v.w);
    }
    __syncthreads();

    float scores[kKeyTiles][4] = {};
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
      for (int j = 0; j < kKeyTiles; ++j) {
        const __nv_bfloat16* at = k_tile + (8 * j + g) * kStride + 16 * c + 2 * t;
        mma_bf16(scores[j], q_fragments[c], load_pair(at), load_pair(at + 8));
      }
    }
    // Scale and mask: element e of tile j is key first_key + 8j + 2t + (e & 1) of row e / 2.
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = first_key + 8 * j + 2 * t + (e & 1);
        const int64_t query_position = position[e >> 1];
        const bool visible =
            key <= query_position && (p.window <= 0 || key > query_position - p.window);
        scores[j][e] = visible ? scores[j][e] * p.scale : -INFINITY;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], scores[j][e]);
      }
    }
    float base[2], correction[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float new_max = fmaxf(running_max[r], quad_max(tile_max[r]));
      base[r] = new_max == -INFINITY ? 0.0f : new_max;  // nothing visible yet: all weights 0
      correction[r] = expf(running_max[r] - base[r]);
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
        scores[j][e] = expf(scores[j][e] - base[e >> 1]);
        running_sum[e >> 1] += scores[j][e];
      }
    }
    // out += P V, 16 keys per k-step: score tiles 2s and 2s + 1 are the A fragment.
#pragma unroll
    for (int s = 0; s < kKeys / 16; ++s) {
      const uint32_t a[4] = {pack_bf16(scores[2 * s][0], scores[2 * s][1]),
                             pack_bf16(scores[2 * s][2], scores[2 * s][3]),
                             pack_bf16(scores[2 * s + 1][0], scores[2 * s + 1][1]),
                             pack_bf16(scores[2 * s + 1][2], scores[2 * s + 1][3])};
#pragma unroll
      for (int n = 0; n < kDimTiles; ++n) {
        const __nv_bfloat16* at = v_transposed + (8 * n + g) * kTransposedStride + 16 * s + 2 * t;
        mma_bf16(out[n], a, load_pair(at), load_pair(at + 8));
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float inverse = 1.0f / quad_sum(running_sum[r]);  // every lane takes part
    const int64_t query = first_query + row + 8 * r;
    if (query >= p.n_tokens) continue;
    float* result = p.out + (b * p.n_tokens + query) * q_width + head * D + 2 * t;
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) {
      *reinterpret_cast<float2*>(result + 8 * n) =
          make_float2(out[n][2 * r] * inverse, out[n][2 * r + 1] * inverse);
    }
  }
}

template <int D, typename Cache>
void launch_typed(const AttentionParams& p, cudaStream_t stream) {
  constexpr size_t bytes = shared_bytes<D>();
  if constexpr (bytes > 48 * 1024) {
    cudaFuncSetAttribute(flash_kernel<D, Cache>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
  }
  const dim3 grid(static_cast<unsigned>((p.n_tokens + kQueries - 1) / kQueries),
                  static_cast<unsigned>(p.n_heads), static_cast<unsigned>(p.batch));
  launch_kernel(flash_kernel<D, Cache>, grid, kWarps * 32, bytes, stream, p);
}

template <int D>
void launch(const AttentionParams& p, cudaStream_t stream) {
  if (p.bf16_cache) {
    launch_typed<D, __nv_bfloat16>(p, stream);
  } else {
    launch_typed<D, float>(p, stream);
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
