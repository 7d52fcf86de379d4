// Attention of one new token per sequence over its KV cache (decoding), in one launch.
//
// Block (split s, kv head, sequence) takes chunks s, s + S, ... of the keys (S splits, each
// chunk 32 loads of keys, 16 for 8 query heads, spread over the block's 8 warps) for all the
// query heads that read this kv head. A lane holds 16 bytes of a key row (8 bf16 or 4 float32
// values) and the same columns of q for each query head, so a warp reads 2-4 whole key rows per
// load instruction (256-byte rows of bf16 x 128) and all its loads of K and V are in flight at
// once; lanes of a key meet in a shuffle to form its scores. Each warp keeps an online softmax
// (running max, sum and output columns) over its keys; the block merges its warps in shared
// memory. With several splits each block writes its (max, sum, output) record, and the last
// block to finish (counted in the context's completion counters) merges the records and writes
// the output: no second launch. Before waiting for the previous kernel the block asks L2 for its
// first chunk (a hint: the loads that use the values come after the wait).
//
// The kernel it replaces for decoding (cuda_attention.cu: 32-key tiles through shared memory,
// a second kernel to combine the splits) took 14 us a layer inside the step graph of a
// Llama-3.1-8B-shaped model at 512-640 keys (H100: tg128 bf16 161.6 -> 174.3 tok/s with
// attention left out). The chunk over 8 warps of 4 loads instead of 4 warps of 8 shortens each
// warp's serial work (decoding is latency-bound here: few blocks, one per kv head and split):
// tg128 Q4_0 371.4 -> 378.3 tok/s (means of 3 and 5 runs; 16 warps 381.7), bf16 169.8 -> 172.2
// (16 warps 173.2) on one H100.
#include <algorithm>
#include <cfloat>
#include <cstdlib>
#include <type_traits>

#include <cuda_bf16.h>

#include "backend/cuda/cuda_int16_x.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace flow2::cuda {
namespace {

constexpr int kMaxSplits = 64;

template <typename Cache, int kHeadDim, int kMaxGroup, int kWarps>
struct DecodeTile {
  static constexpr int kPerLoad = 16 / static_cast<int>(sizeof(Cache));  // values in 16 bytes
  static constexpr int kLanesPerKey = kHeadDim / kPerLoad;
  static constexpr int kKeysPerLoad = 32 / kLanesPerKey;
  // Loads of K (and of V) in flight per lane: a chunk of 32 loads (16 for 8 query heads, whose
  // registers allow fewer) spread over the block's warps.
  static constexpr int kLoads = (kMaxGroup <= 4 ? 32 : 16) / kWarps;
  static constexpr int kKeysPerWarp = kLoads * kKeysPerLoad;
  static constexpr int kChunk = kWarps * kKeysPerWarp;
  static_assert(kLoads * kWarps == (kMaxGroup <= 4 ? 32 : 16),
                "a chunk's keys do not depend on the warps (chunk_keys)");
  static_assert(kLanesPerKey <= 32 && 32 % kLanesPerKey == 0, "a key's lanes share one warp");
};

__device__ inline void prefetch_l2(const void* address) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(address));
}

// 16 bytes of a cache row as floats.
template <int kPerLoad>
__device__ inline void unpack(const uint4& raw, float (&values)[kPerLoad]) {
  if constexpr (kPerLoad == 8) {  // bf16: the high half of each 32-bit word is the odd value
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      values[2 * i] = __uint_as_float(words[i] << 16);
      values[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  } else {
    values[0] = __uint_as_float(raw.x);
    values[1] = __uint_as_float(raw.y);
    values[2] = __uint_as_float(raw.z);
    values[3] = __uint_as_float(raw.w);
  }
}

template <typename Cache, int kHeadDim, int kMaxGroup, int kWarps>
__global__ void __launch_bounds__(kWarps * 32)
    decode_attention_kernel(const AttentionParams p, int* __restrict__ counters) {
  using Tile = DecodeTile<Cache, kHeadDim, kMaxGroup, kWarps>;
  constexpr int E = Tile::kPerLoad, kLanes = Tile::kLanesPerKey, kLoads = Tile::kLoads;
  constexpr int kChunk = Tile::kChunk;
  __shared__ float warp_max[kWarps][kMaxGroup], warp_sum[kWarps][kMaxGroup];
  __shared__ float warp_out[kWarps][kMaxGroup][kHeadDim];
  __shared__ float split_weight[kMaxSplits][kMaxGroup];
  __shared__ bool last_block;
  let_next_kernel_launch();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = lane / kLanes, part = lane % kLanes;
  const int64_t kv_head = blockIdx.y, b = blockIdx.z;
  const int group = static_cast<int>(p.n_heads / p.n_kv_heads);
  // Staged lengths were copied before the first kernel of this step (or of this op) started.
  const int64_t n_past = p.device_n_past ? p.device_n_past[b] : p.n_past;
  const int64_t total = n_past + 1;
  const int64_t first_key = p.window > 0 ? max(int64_t{0}, n_past - p.window + 1) : int64_t{0};
  const int64_t first_chunk = first_key / kChunk, end_chunk = (total + kChunk - 1) / kChunk;
  const int64_t splits = min(static_cast<int64_t>(gridDim.x), end_chunk - first_chunk);
  const int64_t kv_width = p.n_kv_heads * kHeadDim;
  const int64_t head_offset = b * p.capacity * kv_width + kv_head * kHeadDim + part * E;
  const Cache* keys = static_cast<const Cache*>(p.k) + head_offset;
  const Cache* values = static_cast<const Cache*>(p.v) + head_offset;
  auto key_of = [&](int64_t chunk, int i) {
    return chunk * kChunk + warp * Tile::kKeysPerWarp + i * Tile::kKeysPerLoad + slot;
  };

  if (blockIdx.x < splits && (part * E * static_cast<int>(sizeof(Cache))) % 128 == 0) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int64_t key = key_of(first_chunk + blockIdx.x, i);
      if (key >= first_key && key < total) {
        prefetch_l2(keys + key * kv_width);
        prefetch_l2(values + key * kv_width);
      }
    }
  }
  wait_for_prior_kernels();
  if (blockIdx.x >= splits) return;

  float q[kMaxGroup][E];
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    // Heads past the group (kMaxGroup pads it) hold zeros and are never written.
    const int64_t head = kv_head * group + min(h, group - 1);
    const float* row = p.q + (b * p.n_heads + head) * kHeadDim + part * E;
#pragma unroll
    for (int e = 0; e < E; e += 4) {
      const float4 four = h < group ? __ldg(reinterpret_cast<const float4*>(row + e))
                                    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      q[h][e] = four.x;
      q[h][e + 1] = four.y;
      q[h][e + 2] = four.z;
      q[h][e + 3] = four.w;
    }
  }
  float running_max[kMaxGroup], running_sum[kMaxGroup], out[kMaxGroup][E];
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    running_max[h] = -INFINITY;
    running_sum[h] = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) out[h][e] = 0.0f;
  }

  for (int64_t chunk = first_chunk + blockIdx.x; chunk < end_chunk; chunk += splits) {
    uint4 k_raw[kLoads], v_raw[kLoads];
    bool visible[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int64_t key = key_of(chunk, i);
      visible[i] = key >= first_key && key < total;
      k_raw[i] = visible[i] ? __ldg(reinterpret_cast<const uint4*>(keys + key * kv_width))
                            : make_uint4(0, 0, 0, 0);
      v_raw[i] = visible[i] ? __ldg(reinterpret_cast<const uint4*>(values + key * kv_width))
                            : make_uint4(0, 0, 0, 0);
    }
    float weight[kLoads][kMaxGroup];  // scores, then exp(score - max)
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      float k[E];
      unpack<E>(k_raw[i], k);
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) dot = fmaf(q[h][e], k[e], dot);
#pragma unroll
        for (int offset = 1; offset < kLanes; offset *= 2) {
          dot += __shfl_xor_sync(0xffffffff, dot, offset);
        }
        weight[i][h] = visible[i] ? dot * p.scale : -INFINITY;
      }
    }
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) {
      float chunk_max = -INFINITY;
#pragma unroll
      for (int i = 0; i < kLoads; ++i) chunk_max = fmaxf(chunk_max, weight[i][h]);
#pragma unroll
      for (int offset = kLanes; offset < 32; offset *= 2) {
        chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xffffffff, chunk_max, offset));
      }
      const float new_max = fmaxf(running_max[h], chunk_max);
      // Nothing visible to this warp yet (a window's start): weights stay 0.
      const float correction = new_max == -INFINITY ? 1.0f : expf(running_max[h] - new_max);
      running_max[h] = new_max;
      running_sum[h] *= correction;
#pragma unroll
      for (int e = 0; e < E; ++e) out[h][e] *= correction;
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        weight[i][h] = visible[i] ? expf(weight[i][h] - new_max) : 0.0f;
        running_sum[h] += weight[i][h];
      }
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      float v[E];
      unpack<E>(v_raw[i], v);
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
#pragma unroll
        for (int e = 0; e < E; ++e) out[h][e] = fmaf(weight[i][h], v[e], out[h][e]);
      }
    }
  }

  // The warp's keys: lanes of different key slots hold the same columns (and the lanes of a
  // key the same weights, so sums run over slots only).
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
#pragma unroll
    for (int offset = kLanes; offset < 32; offset *= 2) {
      running_sum[h] += __shfl_xor_sync(0xffffffff, running_sum[h], offset);
#pragma unroll
      for (int e = 0; e < E; ++e) out[h][e] += __shfl_xor_sync(0xffffffff, out[h][e], offset);
    }
    if (slot == 0) {
#pragma unroll
      for (int e = 0; e < E; ++e) warp_out[warp][h][part * E + e] = out[h][e];
    }
    if (lane == 0) {
      warp_max[warp][h] = running_max[h];
      warp_sum[warp][h] = running_sum[h];
    }
  }
  __syncthreads();

  // The block's keys: merge the warps; one output column per thread and pass.
  const int64_t outputs = static_cast<int64_t>(group) * kHeadDim;
  // Writes column o of this kv head's query heads. With out_x16 (one sequence) the warp's 32
  // columns, one group of the o projection's x, are staged as int16 too: outputs is a multiple of
  // 64, so a warp's passes over o are whole and lane l holds element l of its group.
  const int64_t first_output = (b * p.n_heads + kv_head * group) * kHeadDim;
  auto store_output = [&](int64_t o, float value) {
    p.out[first_output + o] = value;
    if (p.out_x16) {
      stage_lane_x16(value, (first_output + o) / kInt16Group, p.n_heads * kHeadDim,
                     static_cast<uint4*>(p.out_x16));
    }
  };
  const int64_t record_floats = outputs + 2 * group;  // output columns, maxima, sums
  const int64_t pair = b * p.n_kv_heads + kv_head;
  float* records = p.partial + pair * gridDim.x * record_floats;
  float* record = records + blockIdx.x * record_floats;
  for (int64_t o = threadIdx.x; o < outputs; o += blockDim.x) {
    const int h = static_cast<int>(o / kHeadDim), d = static_cast<int>(o % kHeadDim);
    float block_max = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, warp_max[w][h]);
    float sum = 0.0f, value = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float scale = warp_max[w][h] == -INFINITY ? 0.0f : expf(warp_max[w][h] - block_max);
      sum = fmaf(warp_sum[w][h], scale, sum);
      value = fmaf(warp_out[w][h][d], scale, value);
    }
    if (splits == 1) {
      store_output(o, value / sum);
    } else {
      record[o] = value;
      if (d == 0) {
        record[outputs + h] = block_max;
        record[outputs + group + h] = sum;
      }
    }
  }
  if (splits == 1) return;

  // Records out; the last block of this (sequence, kv head) merges them.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    last_block = atomicAdd(counters + pair, 1) == splits - 1;
    if (last_block) counters[pair] = 0;  // ready for the next launch (graph replays)
  }
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  if (threadIdx.x < group) {
    const int h = threadIdx.x;
    float global_max = -INFINITY;
    for (int64_t s = 0; s < splits; ++s) {
      global_max = fmaxf(global_max, __ldcg(records + s * record_floats + outputs + h));
    }
    float total_sum = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      const float m = __ldcg(records + s * record_floats + outputs + h);
      const float scale = m == -INFINITY ? 0.0f : expf(m - global_max);
      split_weight[s][h] = scale;
      total_sum = fmaf(__ldcg(records + s * record_floats + outputs + group + h), scale, total_sum);
    }
    for (int64_t s = 0; s < splits; ++s) split_weight[s][h] /= total_sum;
  }
  __syncthreads();
  for (int64_t o = threadIdx.x; o < outputs; o += blockDim.x) {
    const int h = static_cast<int>(o / kHeadDim);
    float value = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      value = fmaf(__ldcg(records + s * record_floats + o), split_weight[s][h], value);
    }
    store_output(o, value);
  }
}

// Warps per block, among which a chunk's loads spread: 8, or FLOW2_CUDA_ATTENTION_WARPS=4 or 16
// (to compare; 16 only for groups of up to 4 query heads, whose warps' outputs fit in shared
// memory).
int attention_warps() {
  static const int warps = [] {
    const char* value = std::getenv("FLOW2_CUDA_ATTENTION_WARPS");
    const int chosen = value ? std::atoi(value) : 8;
    return chosen == 4 || chosen == 16 ? chosen : 8;
  }();
  return warps;
}

template <typename Cache, int kHeadDim, int kMaxGroup>
void launch(const AttentionParams& p, int64_t splits, int* counters, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(p.n_kv_heads),
                  static_cast<unsigned>(p.batch));
  auto run = [&](auto warps) {
    constexpr int kWarps = decltype(warps)::value;
    launch_kernel(decode_attention_kernel<Cache, kHeadDim, kMaxGroup, kWarps>, grid, kWarps * 32, 0,
                  stream, p, counters);
  };
  const int warps = attention_warps();
  if constexpr (kMaxGroup <= 4) {  // 16 warps of 8 heads would pass 48 KB of shared memory
    if (warps == 16) return run(std::integral_constant<int, 16>{});
  }
  if (warps == 4) return run(std::integral_constant<int, 4>{});
  run(std::integral_constant<int, 8>{});
}

template <typename Cache, int kHeadDim>
void launch_for_group(const AttentionParams& p, int64_t splits, int* counters,
                      cudaStream_t stream) {
  const int64_t group = p.n_heads / p.n_kv_heads;
  if (group == 1) {
    launch<Cache, kHeadDim, 1>(p, splits, counters, stream);
  } else if (group == 2) {
    launch<Cache, kHeadDim, 2>(p, splits, counters, stream);
  } else if (group <= 4) {
    launch<Cache, kHeadDim, 4>(p, splits, counters, stream);
  } else {
    launch<Cache, kHeadDim, 8>(p, splits, counters, stream);
  }
}

template <typename Cache>
int64_t chunk_keys(int64_t head_dim, int64_t group) {
  auto chunk = [&](auto tile) { return int64_t{decltype(tile)::kChunk}; };
  const bool wide_group = group > 4;  // a chunk's keys do not depend on the warps
  return head_dim == 64 ? (wide_group ? chunk(DecodeTile<Cache, 64, 8, 4>{})
                                      : chunk(DecodeTile<Cache, 64, 4, 4>{}))
                        : (wide_group ? chunk(DecodeTile<Cache, 128, 8, 4>{})
                                      : chunk(DecodeTile<Cache, 128, 4, 4>{}));
}

}  // namespace

bool decode_attention_supported(const AttentionParams& p) {
  return p.n_tokens == 1 && (p.head_dim == 64 || p.head_dim == 128) && p.n_kv_heads > 0 &&
         p.n_heads % p.n_kv_heads == 0 && p.n_heads / p.n_kv_heads <= 8;
}

int64_t decode_attention_splits(const AttentionParams& p, int64_t keys, int multiprocessors) {
  const int64_t chunk = p.bf16_cache
                            ? chunk_keys<__nv_bfloat16>(p.head_dim, p.n_heads / p.n_kv_heads)
                            : chunk_keys<float>(p.head_dim, p.n_heads / p.n_kv_heads);
  const int64_t blocks = p.batch * p.n_kv_heads;
  const int64_t wanted = (2 * int64_t{multiprocessors} + blocks - 1) / blocks;
  return std::clamp<int64_t>(std::min(wanted, (keys + chunk - 1) / chunk), 1, kMaxSplits);
}

int64_t decode_attention_record_floats(const AttentionParams& p) {
  const int64_t group = p.n_heads / p.n_kv_heads;
  return group * (p.head_dim + 2);
}

void decode_attention(const AttentionParams& p, int64_t splits, int* counters,
                      cudaStream_t stream) {
  if (p.batch == 0) return;
  if (p.bf16_cache) {
    if (p.head_dim == 64) {
      launch_for_group<__nv_bfloat16, 64>(p, splits, counters, stream);
    } else {
      launch_for_group<__nv_bfloat16, 128>(p, splits, counters, stream);
    }
  } else if (p.head_dim == 64) {
    launch_for_group<float, 64>(p, splits, counters, stream);
  } else {
    launch_for_group<float, 128>(p, splits, counters, stream);
  }
  check_launch("decode attention");
}

}  // namespace flow2::cuda
