// Causal attention over the KV cache with an online softmax: no [queries, keys] matrix exists.
//
// A block takes up to kWarps (query, head) pairs that read the same key/value head (a query tile
// of the grouped-query heads), loads the keys and values in tiles of 32 rows into shared memory
// once for all its warps, and each warp keeps its query's running maximum, sum and output. With
// few queries the key range is split over more blocks (grid z) whose partial results a second
// kernel combines. Decoding one token takes cuda_decode_attention.cu where it can (head
// dimensions 64 and 128); this kernel serves the other shapes and float32 prompts.
#include <cfloat>

#include "backend/cuda/cuda_cache_access.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_math.cuh"

namespace flow2::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kKeyTile = 32;

__host__ __device__ inline int64_t group_of(const AttentionParams& p) {
  return p.n_heads / p.n_kv_heads;
}

// Rows of the key tile are padded by 4 floats: each lane reads its own key row in 16-byte pieces,
// and the padding puts 8 consecutive lanes' pieces in different banks.
__host__ __device__ inline int64_t key_stride(int64_t head_dim) {
  return head_dim + 4;
}

size_t shared_bytes(int64_t head_dim) {
  // q per warp, keys, values.
  return sizeof(float) * static_cast<size_t>(kWarps * head_dim + kKeyTile * key_stride(head_dim) +
                                             kKeyTile * head_dim);
}

// head_dim is a multiple of 4; lane l owns output elements 128 c + 4 l .. + 3 for c < C.
template <int C, typename Cache>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionParams p) {
  begin_after_prior_kernels();
  extern __shared__ float shared[];
  const int64_t head_dim = p.head_dim;
  float* q_tile = shared;
  float* k_tile = q_tile + kWarps * head_dim;
  float* v_tile = k_tile + kKeyTile * key_stride(head_dim);

  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int64_t group = group_of(p);
  const int64_t items = p.n_tokens * group;  // (token, head in group) pairs of this kv head
  const int64_t b = blockIdx.y / p.n_kv_heads, kv_head = blockIdx.y % p.n_kv_heads;
  const int64_t first_item = static_cast<int64_t>(blockIdx.x) * kWarps;
  const int64_t last_item = min(first_item + kWarps, items) - 1;
  const int64_t item = first_item + warp;
  const bool active = item < items;
  const int64_t t = active ? item / group : 0;
  const int64_t head = kv_head * group + (active ? item % group : 0);
  const int64_t n_past = p.device_n_past ? p.device_n_past[b] : p.n_past;
  const int64_t position = n_past + t;
  const int64_t first_key = p.window > 0 ? max(int64_t{0}, position - p.window + 1) : int64_t{0};

  // Keys this block needs: its split, cut to what its queries can see.
  const int64_t total = n_past + p.n_tokens;
  const int64_t split_length = (total + p.splits - 1) / p.splits;
  const int64_t split_begin = blockIdx.z * split_length;
  const int64_t split_end = min(split_begin + split_length, total);
  const int64_t lowest_position = n_past + first_item / group;
  const int64_t highest_position = n_past + last_item / group;
  const int64_t lowest_key =
      p.window > 0 ? max(int64_t{0}, lowest_position - p.window + 1) : int64_t{0};
  const int64_t key_begin = max(split_begin, lowest_key);
  const int64_t key_end = min(split_end, highest_position + 1);

  const int64_t q_width = p.n_heads * head_dim, kv_width = p.n_kv_heads * head_dim;
  const int64_t query_row = b * p.n_tokens + t;
  if (active) {
    for (int64_t d = lane; d < head_dim; d += 32) {
      q_tile[warp * head_dim + d] = p.q[query_row * q_width + head * head_dim + d];
    }
  }
  float running_max = -INFINITY, running_sum = 0.0f;
  float4 acc[C];
#pragma unroll
  for (int c = 0; c < C; ++c) acc[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const int64_t quads = head_dim / 4;

  const Cache* keys =
      static_cast<const Cache*>(p.k) + b * p.capacity * kv_width + kv_head * head_dim;
  const Cache* values =
      static_cast<const Cache*>(p.v) + b * p.capacity * kv_width + kv_head * head_dim;
  for (int64_t tile = key_begin; tile < key_end; tile += kKeyTile) {
    const int64_t tile_rows = min(int64_t{kKeyTile}, key_end - tile);
    __syncthreads();  // the previous tile is no longer read
    for (int64_t i = threadIdx.x; i < tile_rows * quads; i += blockDim.x) {
      const int64_t r = i / quads, d = 4 * (i % quads);
      *reinterpret_cast<float4*>(k_tile + r * key_stride(head_dim) + d) =
          load_four(keys + (tile + r) * kv_width + d);
      *reinterpret_cast<float4*>(v_tile + r * head_dim + d) =
          load_four(values + (tile + r) * kv_width + d);
    }
    __syncthreads();
    if (!active) continue;
    const int64_t key = tile + lane;
    const bool visible = lane < tile_rows && key >= first_key && key <= position;
    float score = -INFINITY;
    if (visible) {
      float dot = 0.0f;
      const auto* k_row = reinterpret_cast<const float4*>(k_tile + lane * key_stride(head_dim));
      const auto* q_row = reinterpret_cast<const float4*>(q_tile + warp * head_dim);
      for (int64_t d = 0; d < quads; ++d) {
        const float4 qv = q_row[d], kv = k_row[d];
        dot = fmaf(qv.x, kv.x, dot);
        dot = fmaf(qv.y, kv.y, dot);
        dot = fmaf(qv.z, kv.z, dot);
        dot = fmaf(qv.w, kv.w, dot);
      }
      score = dot * p.scale;
    }
    const float new_max = fmaxf(running_max, warp_max(score));
    if (new_max == -INFINITY) continue;  // nothing visible yet
    const float correction = expf(running_max - new_max);
    const float weight = visible ? expf(score - new_max) : 0.0f;
    running_sum = running_sum * correction + warp_sum(weight);
    running_max = new_max;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      acc[c].x *= correction;
      acc[c].y *= correction;
      acc[c].z *= correction;
      acc[c].w *= correction;
    }
    for (int j = 0; j < tile_rows; ++j) {
      const float w = __shfl_sync(0xffffffff, weight, j);
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int64_t d = 128 * c + 4 * lane;
        if (d < head_dim) {
          const float4 v = *reinterpret_cast<const float4*>(v_tile + j * head_dim + d);
          acc[c].x = fmaf(w, v.x, acc[c].x);
          acc[c].y = fmaf(w, v.y, acc[c].y);
          acc[c].z = fmaf(w, v.z, acc[c].z);
          acc[c].w = fmaf(w, v.w, acc[c].w);
        }
      }
    }
  }
  if (!active) return;
  const int64_t pair = query_row * p.n_heads + head;
  if (p.splits == 1) {
    float* result = p.out + query_row * q_width + head * head_dim;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t d = 128 * c + 4 * lane;
      if (d < head_dim) {
        *reinterpret_cast<float4*>(result + d) =
            make_float4(acc[c].x / running_sum, acc[c].y / running_sum, acc[c].z / running_sum,
                        acc[c].w / running_sum);
      }
    }
    return;
  }
  const int64_t pairs = p.batch * p.n_tokens * p.n_heads;
  float* partial = p.partial + (blockIdx.z * pairs + pair) * (head_dim + 2);
  if (lane == 0) {
    partial[0] = running_max;
    partial[1] = running_sum;
  }
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int64_t d = 128 * c + 4 * lane;
    if (d < head_dim) {
      partial[2 + d] = acc[c].x;
      partial[3 + d] = acc[c].y;
      partial[4 + d] = acc[c].z;
      partial[5 + d] = acc[c].w;
    }
  }
}

// One warp per (query, head): merges the splits' (max, sum, output) triples.
__global__ void combine_kernel(AttentionParams p) {
  begin_after_prior_kernels();
  const int64_t pairs = p.batch * p.n_tokens * p.n_heads;
  const int64_t pair = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (pair >= pairs) return;
  const int64_t stride = p.head_dim + 2;
  float global_max = -INFINITY;
  for (int64_t s = 0; s < p.splits; ++s) {
    global_max = fmaxf(global_max, p.partial[(s * pairs + pair) * stride]);
  }
  float total = 0.0f;
  for (int64_t s = 0; s < p.splits; ++s) {
    const float* part = p.partial + (s * pairs + pair) * stride;
    if (part[0] != -INFINITY) total += part[1] * expf(part[0] - global_max);
  }
  const int64_t row = pair / p.n_heads, head = pair % p.n_heads;
  float* result = p.out + row * p.n_heads * p.head_dim + head * p.head_dim;
  for (int64_t d = lane; d < p.head_dim; d += 32) {
    float value = 0.0f;
    for (int64_t s = 0; s < p.splits; ++s) {
      const float* part = p.partial + (s * pairs + pair) * stride;
      if (part[0] != -INFINITY) value += part[2 + d] * expf(part[0] - global_max);
    }
    result[d] = value / total;
  }
}

template <int C, typename Cache>
void launch(const AttentionParams& p, cudaStream_t stream) {
  const size_t bytes = shared_bytes(p.head_dim);
  if (bytes > 48 * 1024) {
    cudaFuncSetAttribute(attention_kernel<C, Cache>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
  }
  const dim3 grid(static_cast<unsigned>((p.n_tokens * group_of(p) + kWarps - 1) / kWarps),
                  static_cast<unsigned>(p.batch * p.n_kv_heads), static_cast<unsigned>(p.splits));
  launch_kernel(attention_kernel<C, Cache>, grid, kWarps * 32, bytes, stream, p);
}

template <int C>
void launch_for_cache(const AttentionParams& p, cudaStream_t stream) {
  if (p.bf16_cache) {
    launch<C, __nv_bfloat16>(p, stream);
  } else {
    launch<C, float>(p, stream);
  }
}

}  // namespace

int64_t attention_blocks(const AttentionParams& p) {
  return (p.n_tokens * group_of(p) + kWarps - 1) / kWarps * p.batch * p.n_kv_heads;
}

void attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.batch * p.n_tokens == 0) return;
  if (p.head_dim <= 128) {
    launch_for_cache<1>(p, stream);
  } else {
    launch_for_cache<2>(p, stream);
  }
  check_launch("attention");
  if (p.splits > 1) {
    const int64_t pairs = p.batch * p.n_tokens * p.n_heads;
    launch_kernel(combine_kernel, static_cast<unsigned>((pairs * 32 + 255) / 256), 256, 0, stream,
                  p);
    check_launch("attention combine");
  }
}

}  // namespace flow2::cuda
