// Sampling on the GPU (Backend::sample_rows): one block per row of logits picks the token that
// the CPU's choose_token (sampler.h) picks for the same scores and uniform draw, without sorting
// the vocabulary, and only the chosen ids go back to the host.
//
// The candidates' order (largest score first, lower index first on equal scores) is the order of
// the 64-bit candidate key (score key << 32 | ~index, sampling_math.h), so every filter keeps the
// candidates whose key is at least some boundary key, and the draw picks one candidate. Each is
// found by the same selection: "the last candidate of the shortest prefix whose weight reaches
// `need`", where the weight of a candidate is 1 (top-k: need = k), its softmax weight (top-p:
// need = top_p_need(total)) or its kept weight (the draw: need = draw_target(u, total) + 1, so
// the pick is the first candidate whose cumulative weight exceeds the target). A selection is a
// radix select over the 32-bit score key, most significant digit first (11, 11, 10 bits): a pass
// over the row histograms the weight of the candidates that match the digits found so far into
// 2048 bins in shared memory (with their count and lowest index from the second pass on), a
// block-wide scan over the bins from the largest down finds the bin where the cumulative weight
// reaches what is still needed, and the next pass looks only inside it. A bin holding a single
// candidate ends the selection early (its lowest index is that candidate). When the whole key is
// fixed and several candidates share it (equal scores), they weigh the same, so the rank of the
// one needed is known, and an ordered pass over the row finds the candidate of that rank in
// index order.
//
// The kernel for a row: the largest candidate key (the best candidate, whose score the weights
// are relative to); top-k's boundary (count selection); the softmax weights of the top-k prefix,
// computed once in top-p's first pass and stored in a scratch row of integers, then top-p's
// boundary; the kept weights (in the prefix, at least the min-p threshold) written over them in
// the draw's first pass; then the draw. Without top-p the draw's first pass computes the weights.
//
// Exactness: weights are integers in units of 2^-40 computed by the same double operations on
// the host and here (sampling_math.h), so the shared-memory atomic sums, in whatever order they
// happen, equal the CPU's sums, and every comparison with top-p's need or the draw's target is an
// integer comparison. A float or double mass summed in a different order could differ in its
// last bit and flip a pick whose cumulative mass lies within that of a boundary; here none can.
#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "generate/sampling_math.h"

namespace flow2::cuda {
namespace {

using u64 = unsigned long long;
using sampling::candidate_index;
using sampling::candidate_key;
using sampling::score_key;

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 2048;  // the widest digit
constexpr int kDigits = 3;
constexpr unsigned kFullMask = 0xffffffffu;
static_assert(kWarps == 32, "the scans finish the warp totals in one warp");
static_assert(kBins == 2 * kThreads, "each thread scans two bins");

// Digits of the score key, most significant first: bits 31..21, 20..10, 9..0.
__device__ inline int digit_shift(int digit) {
  return digit == 0 ? 21 : (digit == 1 ? 10 : 0);
}
__device__ inline int digit_bits(int digit) {
  return digit == 2 ? 10 : 11;
}

struct SelectShared {
  u64 mass[kBins];        // weight per bin
  unsigned count[kBins];  // candidates of positive weight per bin (count selections: pass 1 too)
  unsigned first[kBins];  // their lowest index (from the second pass on)
  u64 warp_sums[kWarps];
  unsigned warp_counts[kWarps];
  u64 total;              // the scan's sum, the block maximum
  u64 need;               // weight still needed inside the prefix's bin
  u64 before;             // weight of the bins above the crossing bin
  unsigned prefix, mask;  // the key digits found so far
  int bin;
  int result;  // the selected candidate's index, -1 while unknown
  int rank;    // > 0: the rank-th lowest index among candidates with key == prefix
};

__device__ inline u64 larger(u64 a, u64 b) {
  return a > b ? a : b;
}

// The largest value of the block's threads (every thread gets it).
__device__ u64 block_max(u64 value, SelectShared& shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int offset = 16; offset > 0; offset /= 2) {
    value = larger(value, __shfl_xor_sync(kFullMask, value, offset));
  }
  if (lane == 0) shared.warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    u64 best = shared.warp_sums[lane];
    for (int offset = 16; offset > 0; offset /= 2) {
      best = larger(best, __shfl_xor_sync(kFullMask, best, offset));
    }
    if (lane == 0) shared.total = best;
  }
  __syncthreads();
  return shared.total;
}

// The sum of `value` over the threads before this one; shared.total gets the sum of all.
__device__ u64 block_exclusive_sum(u64 value, SelectShared& shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u64 inclusive = value;
  for (int offset = 1; offset < 32; offset *= 2) {
    const u64 other = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  if (lane == 31) shared.warp_sums[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const u64 own = shared.warp_sums[lane];
    u64 running = own;
    for (int offset = 1; offset < 32; offset *= 2) {
      const u64 other = __shfl_up_sync(kFullMask, running, offset);
      if (lane >= offset) running += other;
    }
    shared.warp_sums[lane] = running - own;
    if (lane == 31) shared.total = running;
  }
  __syncthreads();
  return shared.warp_sums[warp] + inclusive - value;
}

// Among the candidates with key == shared.prefix and positive weight, the one of rank
// shared.rank in index order (ties at a boundary: lower indices come first). The row is read in
// chunks of kThreads in index order; ballots and the warps' counts give each hit its rank.
template <bool kCount, typename Weight>
__device__ int find_ranked(const float* scores, int vocab, Weight weight, SelectShared& shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned wanted = shared.prefix;
  const int rank = shared.rank;
  int seen = 0;
  for (int base = 0; base < vocab; base += kThreads) {
    const int i = base + static_cast<int>(threadIdx.x);
    bool hit = false;
    if (i < vocab) {
      const unsigned key = score_key(scores[i]);
      hit = key == wanted && (kCount || weight(kDigits, i, key) > 0);
    }
    const unsigned ballot = __ballot_sync(kFullMask, hit);
    if (lane == 0) shared.warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int before = seen, chunk = 0;
    for (int w = 0; w < kWarps; ++w) {
      const int count = static_cast<int>(shared.warp_counts[w]);
      if (w < warp) before += count;
      chunk += count;
    }
    if (hit && before + __popc(ballot & ((1u << lane) - 1)) + 1 == rank) shared.result = i;
    seen += chunk;
    __syncthreads();  // the result is written; warp_counts may be overwritten
    if (seen >= rank) break;
  }
  return shared.result;
}

// The index of the last candidate of the shortest prefix (in candidate key order) whose weight
// reaches need_of(total weight), or -1 when need_of returns 0 (nothing to select). kCount: every
// candidate weighs 1; otherwise weight(digit, i, key) is candidate i's weight: on the first
// pass (digit 0, every i of the row, each by the thread that later reads it) it may compute and
// store it, later passes must return the same value. Called by every thread of the block.
template <bool kCount, typename Weight, typename Need>
__device__ int select_boundary(const float* scores, int vocab, Weight weight, Need need_of,
                               SelectShared& shared) {
  const int tid = static_cast<int>(threadIdx.x);
  __syncthreads();  // everyone has read the previous selection's results
  if (tid == 0) {
    shared.prefix = 0;
    shared.mask = 0;
    shared.result = -1;
    shared.rank = 0;
  }
  for (int digit = 0; digit < kDigits; ++digit) {
    const int shift = digit_shift(digit);
    const unsigned digit_mask = (1u << digit_bits(digit)) - 1;
    for (int b = tid; b < kBins; b += kThreads) {
      shared.mass[b] = 0;
      shared.count[b] = 0;
      shared.first[b] = 0xffffffffu;
    }
    __syncthreads();
    const unsigned prefix = shared.prefix, mask = shared.mask;
    for (int i = tid; i < vocab; i += kThreads) {
      const unsigned key = score_key(scores[i]);
      if ((key & mask) != prefix) continue;
      const u64 w = kCount ? 1 : weight(digit, i, key);
      if (w == 0) continue;
      const unsigned bin = (key >> shift) & digit_mask;
      if (kCount) {
        atomicAdd(&shared.count[bin], 1u);
      } else {
        atomicAdd(&shared.mass[bin], w);
        // The first pass sees every candidate: its counts and indices would cost atomics for
        // the whole row and are only needed to end early or break ties later.
        if (digit > 0) atomicAdd(&shared.count[bin], 1u);
      }
      if (digit > 0) atomicMin(&shared.first[bin], static_cast<unsigned>(i));
    }
    __syncthreads();

    // Bins from the largest key down, two per thread: the weight above each.
    const int bin0 = kBins - 1 - 2 * tid, bin1 = bin0 - 1;
    const u64 w0 = kCount ? shared.count[bin0] : shared.mass[bin0];
    const u64 w1 = kCount ? shared.count[bin1] : shared.mass[bin1];
    const u64 before0 = block_exclusive_sum(w0 + w1, shared);
    if (digit == 0 && tid == 0) shared.need = need_of(shared.total);
    __syncthreads();
    const u64 need = shared.need;
    if (need == 0) return -1;  // the same for every thread
    // Exactly one bin has before < need <= before + weight (0 < need <= total).
    if (before0 < need && need <= before0 + w0) {
      shared.bin = bin0;
      shared.before = before0;
    } else if (before0 + w0 < need && need <= before0 + w0 + w1) {
      shared.bin = bin1;
      shared.before = before0 + w0;
    }
    __syncthreads();
    if (tid == 0) {
      const int bin = shared.bin;
      const u64 rest = need - shared.before;  // 1 <= rest <= the bin's weight
      shared.need = rest;
      shared.prefix |= static_cast<unsigned>(bin) << shift;
      shared.mask |= digit_mask << shift;
      const unsigned count = shared.count[bin];
      if (digit > 0 && count == 1) {
        shared.result = static_cast<int>(shared.first[bin]);
      } else if (digit == kDigits - 1) {
        // The whole key is fixed: its candidates have equal scores, hence equal weights.
        const u64 each = kCount ? 1 : shared.mass[bin] / count;
        const u64 rank = (rest + each - 1) / each;
        if (rank == 1) {
          shared.result = static_cast<int>(shared.first[bin]);
        } else {
          shared.rank = static_cast<int>(rank);
        }
      }
    }
    __syncthreads();
    if (shared.result >= 0) return shared.result;
  }
  return find_ranked<kCount>(scores, vocab, weight, shared);
}

// One block per row. See the top of the file.
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleParams params) {
  begin_after_prior_kernels();  // the scores come from the previous kernel
  __shared__ SelectShared shared;
  const int vocab = static_cast<int>(params.vocab);
  const float* scores = params.scores + static_cast<int64_t>(blockIdx.x) * params.vocab;
  u64* weights = params.weights + static_cast<int64_t>(blockIdx.x) * params.vocab;
  const float temperature = params.temperature;

  // The best candidate; every candidate key is positive, so 0 is below them all.
  u64 best = 0;
  for (int i = static_cast<int>(threadIdx.x); i < vocab; i += kThreads) {
    best = larger(best, candidate_key(score_key(scores[i]), static_cast<uint32_t>(i)));
  }
  best = block_max(best, shared);
  const int first = static_cast<int>(candidate_index(best));
  const float top = scores[first];

  // Prefixes are candidates whose key is at least a boundary key (0: every candidate).
  auto boundary_of = [&](int i) {
    return candidate_key(score_key(scores[i]), static_cast<uint32_t>(i));
  };
  u64 top_k_boundary = 0;
  if (params.top_k > 0 && params.top_k < params.vocab) {
    const u64 k = static_cast<u64>(params.top_k);
    const int last = select_boundary<true>(
        scores, vocab, [](int, int, unsigned) { return u64{1}; }, [=](u64) { return k; }, shared);
    top_k_boundary = boundary_of(last);
  }

  const bool top_p_on = params.top_p < 1.0f;
  u64 kept_boundary = top_k_boundary;
  int chosen = -1;
  if (top_p_on) {
    auto weight = [=](int digit, int i, unsigned key) -> u64 {
      if (digit > 0) return weights[i];
      const u64 w = candidate_key(key, static_cast<uint32_t>(i)) >= top_k_boundary
                        ? sampling::candidate_weight(scores[i], top, temperature)
                        : 0;
      weights[i] = w;
      return w;
    };
    const float top_p = params.top_p;
    const int last = select_boundary<false>(
        scores, vocab, weight,
        [=](u64 total) { return total == 0 ? u64{0} : u64{sampling::top_p_need(top_p, total)}; },
        shared);
    if (last < 0) {
      chosen = first;  // nothing weighs anything: the best score is infinite
    } else {
      kept_boundary = boundary_of(last);
    }
  }
  if (chosen < 0) {
    const u64 threshold = sampling::min_p_threshold(params.min_p);
    auto weight = [=](int digit, int i, unsigned key) -> u64 {
      if (digit > 0) return weights[i];
      u64 w = 0;
      if (candidate_key(key, static_cast<uint32_t>(i)) >= kept_boundary) {
        w = top_p_on ? weights[i] : sampling::candidate_weight(scores[i], top, temperature);
        if (w < threshold) w = 0;
      }
      weights[i] = w;
      return w;
    };
    const double u = params.uniforms[blockIdx.x];
    const int pick = select_boundary<false>(
        scores, vocab, weight,
        [=](u64 total) { return total == 0 ? u64{0} : u64{sampling::draw_target(u, total)} + 1; },
        shared);
    chosen = pick < 0 ? first : pick;
  }
  if (threadIdx.x == 0) params.out[blockIdx.x] = chosen;
}

__global__ void penalty_kernel(float* scores, int64_t vocab, const int32_t* ids,
                               const float* amounts, int64_t count, float repetition_penalty) {
  begin_after_prior_kernels();
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= count) return;
  float& score = scores[static_cast<int64_t>(blockIdx.x) * vocab + ids[j]];
  score = sampling::penalized_score(score, repetition_penalty, amounts[j]);
}

}  // namespace

void sample_rows(const SampleParams& params, cudaStream_t stream) {
  if (params.rows == 0 || params.vocab == 0) return;
  launch_kernel(sample_kernel, static_cast<unsigned>(params.rows), kThreads, 0, stream, params);
  check_launch("sample_rows");
}

void apply_penalties(float* scores, int64_t rows, int64_t vocab, const int32_t* ids,
                     const float* amounts, int64_t count, float repetition_penalty,
                     cudaStream_t stream) {
  if (rows == 0 || count == 0) return;
  constexpr int kPenaltyThreads = 256;
  const dim3 grid(static_cast<unsigned>(rows),
                  static_cast<unsigned>((count + kPenaltyThreads - 1) / kPenaltyThreads));
  launch_kernel(penalty_kernel, grid, kPenaltyThreads, 0, stream, scores, vocab, ids, amounts,
                count, repetition_penalty);
  check_launch("sample_rows penalties");
}

}  // namespace flow2::cuda
