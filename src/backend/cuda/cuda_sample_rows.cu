// Sampling on the GPU (Backend::sample_rows): the token that the CPU's choose_token (sampler.h)
// picks for the same scores and uniform draw, without sorting the vocabulary; only the chosen ids
// go back to the host.
//
// The candidates' order (largest score first, lower index first on equal scores) is the order of
// the 64-bit candidate key (score key << 32 | ~index, sampling_math.h). Weights are integers in
// units of 2^-40 of the best candidate's, and a candidate whose (score - top) / temperature,
// computed in double as candidate_weight does, is below -28 weighs 0.
//
// Fast path, four kernels, the first three spread over up to 64 blocks per row (many SMs):
// 1. Each block's largest candidate key (the row's largest is the best candidate, score `top`).
// 2. A score `lo` below which every candidate weighs 0, checked with the weight's own double
//    operations: x(lo) < -28 where x(s) = (s - top) / temperature, and x is monotone in s, so
//    no candidate with a score key at most lo's carries weight. The candidates above lo (set P,
//    an upper set of keys) get their weights computed once, and histograms of their count,
//    weight and kept weight (at least min-p's threshold) over 2048 buckets of
//    (top - s) * 2048 / (top - lo) in float: monotone in the key, so every run of buckets from
//    the top is an upper set of keys too.
// 3. From the histograms, a cut bucket: with top-k (k < |P|), where the count reaches k (top-k
//    of all candidates = top-k of P when |P| >= k; when |P| < k top-k removes only weightless
//    ones); else with top-p, where the weight reaches top_p_need(total); else (the draw alone)
//    the one bucket where the kept weight exceeds draw_target(u, kept total). The candidates of
//    the buckets down to the cut (the draw alone: of the cut bucket) are gathered into a list.
// 4. One block per row sorts the list (bitonic, by candidate key) and walks it with exact
//    integer prefix sums: top-k, top-p's prefix, min-p, the draw, as choose_token does.
// Rows whose filter cannot be built (top not finite, extreme temperatures) or whose list would
// exceed kListCap (top-p near 1 over a flat row, many equal scores at a cut) take the general
// path in kernel 4 instead.
//
// General path (one block of 1024 threads per row): the best candidate, then each of top-k's
// boundary, top-p's boundary and the draw by the same selection: "the last candidate of the
// shortest prefix whose weight reaches `need`", where the weight of a candidate is 1 (top-k:
// need = k), its softmax weight (top-p: need = top_p_need(total)) or its kept weight (the draw:
// need = draw_target(u, total) + 1, so the pick is the first candidate whose cumulative weight
// exceeds the target). A selection is a radix select over the 32-bit score key, most
// significant digit first (11, 11, 10 bits): a pass over the row histograms the weight of the
// candidates that match the digits found so far into 2048 bins in shared memory (with their
// count and lowest index from the second pass on), a block-wide scan over the bins from the
// largest down finds the bin where the cumulative weight reaches what is still needed, and the
// next pass looks only inside it. A bin holding a single candidate ends the selection early
// (its lowest index is that candidate). When the whole key is fixed and several candidates
// share it (equal scores), they weigh the same, so the rank of the one needed is known, and an
// ordered pass over the row finds the candidate of that rank in index order. The softmax
// weights of the top-k prefix are computed once in top-p's first pass and stored in a scratch
// row of integers; the kept weights (in the prefix, at least the min-p threshold) are written
// over them in the draw's first pass. Without top-p the draw's first pass computes the weights.
//
// Exactness: weights are integers computed by the same double operations on the host and here
// (sampling_math.h), so atomic sums, in whatever order they happen, equal the CPU's sums, and
// every comparison with top-p's need or the draw's target is an integer comparison. A float or
// double mass summed in a different order could differ in its last bit and flip a pick whose
// cumulative mass lies within that of a boundary; here none can. The float bucket index and lo
// only decide which candidates are looked at, never a weight or a sum.
#include <algorithm>
#include <cstddef>
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

// The general path for row blockIdx.x (see the top of the file). Called by every thread.
__device__ int general_choice(const SampleParams& params, SelectShared& shared) {
  const int vocab = static_cast<int>(params.vocab);
  const float* scores = params.scores + static_cast<int64_t>(blockIdx.x) * params.vocab;
  u64* weights = params.scratch + static_cast<int64_t>(blockIdx.x) * params.vocab;
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
  return chosen;
}

// ---- The fast path's state and helpers.

constexpr int kSpreadThreads = 256;  // threads of the spread kernels' blocks
constexpr int kSpreadWarps = kSpreadThreads / 32;
constexpr int kMaxSpread = 64;   // blocks per row of the spread kernels
constexpr int kSpreadItems = 8;  // about this many candidates per thread
constexpr int kBuckets = 2048;
constexpr int kListCap = 4096;                   // the most candidates the last kernel sorts
constexpr int kListItems = kListCap / kThreads;  // per thread, contiguous
static_assert(kBuckets % kSpreadThreads == 0, "each thread scans whole bucket runs");
static_assert(kListCap % kThreads == 0, "each thread owns whole list items");

enum Mode : int {
  kGeneral = 0,  // the one-block radix selects over the row
  kTopK = 1,     // the list holds the buckets down to where P's count reaches k
  kTopP = 2,     // the list holds the buckets down to where P's weight reaches top-p's need
  kDraw = 3,     // the list holds the bucket where the kept weight exceeds the draw's target
};

// A row's bookkeeping between the kernels, after the weights scratch.
struct RowState {
  u64 partial_max[kMaxSpread];  // kernel 1: each block's largest candidate key
  unsigned count[kBuckets];     // kernel 2: P's candidates per bucket (zero weights included)
  u64 mass[kBuckets];           // their weights
  u64 kept[kBuckets];           // their weights of at least min-p's threshold (when it is > 1)
  // Kernel 2, block 0: the filter.
  int valid;  // 0: take the general path
  int first;  // the best candidate
  float top, lo, scale;
  unsigned lo_key;  // P = candidates whose score key is above this
  // Kernel 3, block 0: the plan.
  int mode;
  u64 total;        // kTopP: P's weight
  u64 kept_total;   // kDraw: P's kept weight
  u64 kept_before;  // kDraw: the kept weight of the buckets above the cut
  unsigned list_size;
  u64 list[kListCap];  // candidate keys, unordered
};

struct Filter {
  int valid, first;
  float top, lo, scale;
  unsigned lo_key;
};

// x(s) as candidate_weight computes it: a candidate with x < -28 weighs 0.
__device__ inline double weight_exponent(float score, float top, float temperature) {
  return (static_cast<double>(score) - static_cast<double>(top)) / static_cast<double>(temperature);
}

// lo: half a temperature below the weights' cutoff, stepped down until x(lo) < -28 holds
// exactly. Every score s <= lo then has x(s) <= x(lo) (subtraction and division by a positive
// number round monotonically), so weight 0.
__device__ Filter make_filter(const float* scores, u64 best, float temperature) {
  Filter f{};
  f.first = static_cast<int>(candidate_index(best));
  f.top = scores[f.first];
  if (!isfinite(f.top)) return f;  // every weight is 0 or the top is NaN: the general path
  float lo =
      static_cast<float>(static_cast<double>(f.top) - 28.5 * static_cast<double>(temperature));
  for (int step = 0; step < 4 && !(weight_exponent(lo, f.top, temperature) < -28.0); ++step) {
    lo = nextafterf(lo, -INFINITY);  // tiny temperatures: lo rounded to top
  }
  if (!isfinite(lo) || !(weight_exponent(lo, f.top, temperature) < -28.0)) return f;
  const float width = __fsub_rn(f.top, lo);
  const float scale = __fdiv_rn(static_cast<float>(kBuckets), width);
  if (!(width > 0.0f) || !isfinite(scale)) return f;
  f.lo = lo;
  f.scale = scale;
  f.lo_key = score_key(lo);
  f.valid = 1;
  return f;
}

// The bucket of a candidate of P (0: the best; monotone in the score, so in the key).
__device__ inline int bucket_of(float score, float top, float scale) {
  const float d = __fmul_rn(__fsub_rn(top, score), scale);  // >= 0 and finite within P
  return d < static_cast<float>(kBuckets - 1) ? static_cast<int>(d) : kBuckets - 1;
}

__device__ inline RowState& row_state(const SampleParams& params, int row) {
  auto* states = reinterpret_cast<RowState*>(params.scratch + params.rows * params.vocab);
  return states[row];
}

// The block's part of the row: [begin, end).
__device__ inline void chunk_of(int vocab, int& begin, int& end) {
  const int64_t blocks = gridDim.x, block = blockIdx.x;
  begin = static_cast<int>(block * vocab / blocks);
  end = static_cast<int>((block + 1) * vocab / blocks);
}

struct ScanShared {
  u64 warp_sums[kWarps];
};

struct Scan {
  u64 before;  // the sum over the threads before this one
  u64 total;   // over the block
};

// A block-wide exclusive sum (every thread of a block of kWarpsN warps calls it).
template <int kWarpsN>
__device__ Scan block_scan(u64 value, ScanShared& shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u64 inclusive = value;
  for (int offset = 1; offset < 32; offset *= 2) {
    const u64 other = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  __syncthreads();  // the previous scan's readers are done
  if (lane == 31) shared.warp_sums[warp] = inclusive;
  __syncthreads();
  Scan scan{inclusive - value, 0};
  for (int w = 0; w < kWarpsN; ++w) {
    const u64 sum = shared.warp_sums[w];
    if (w < warp) scan.before += sum;
    scan.total += sum;
  }
  return scan;
}

// Kernel 1: each block's largest candidate key; the row's histograms and list are reset.
__global__ void __launch_bounds__(kSpreadThreads) spread_max_kernel(SampleParams params) {
  begin_after_prior_kernels();
  __shared__ u64 warp_max[kSpreadWarps];
  const int row = static_cast<int>(blockIdx.y), tid = static_cast<int>(threadIdx.x);
  const int vocab = static_cast<int>(params.vocab);
  const float* scores = params.scores + static_cast<int64_t>(row) * params.vocab;
  RowState& state = row_state(params, row);
  int begin = 0, end = 0;
  chunk_of(vocab, begin, end);
  u64 best = 0;
  for (int i = begin + tid; i < end; i += kSpreadThreads) {
    best = larger(best, candidate_key(score_key(scores[i]), static_cast<uint32_t>(i)));
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    best = larger(best, __shfl_xor_sync(kFullMask, best, offset));
  }
  if ((tid & 31) == 0) warp_max[tid >> 5] = best;
  __syncthreads();
  if (tid == 0) {
    for (int w = 1; w < kSpreadWarps; ++w) best = larger(best, warp_max[w]);
    state.partial_max[blockIdx.x] = best;
  }
  const int stride = static_cast<int>(gridDim.x) * kSpreadThreads;
  for (int b = static_cast<int>(blockIdx.x) * kSpreadThreads + tid; b < kBuckets; b += stride) {
    state.count[b] = 0;
    state.mass[b] = 0;
    state.kept[b] = 0;
  }
  if (blockIdx.x == 0 && tid == 0) state.list_size = 0;
}

// Kernel 2: the filter, P's weights and their histograms.
__global__ void __launch_bounds__(kSpreadThreads) spread_weigh_kernel(SampleParams params) {
  begin_after_prior_kernels();
  __shared__ unsigned count[kBuckets];
  __shared__ u64 mass[kBuckets];
  __shared__ u64 kept[kBuckets];
  __shared__ Filter filter;
  const int row = static_cast<int>(blockIdx.y), tid = static_cast<int>(threadIdx.x);
  const int vocab = static_cast<int>(params.vocab);
  const float* scores = params.scores + static_cast<int64_t>(row) * params.vocab;
  RowState& state = row_state(params, row);
  if (tid == 0) {
    u64 best = 0;
    for (int b = 0; b < static_cast<int>(gridDim.x); ++b) best = larger(best, state.partial_max[b]);
    filter = make_filter(scores, best, params.temperature);
    if (blockIdx.x == 0) {
      state.valid = filter.valid;
      state.first = filter.first;
      state.top = filter.top;
      state.lo = filter.lo;
      state.scale = filter.scale;
      state.lo_key = filter.lo_key;
    }
  }
  for (int b = tid; b < kBuckets; b += kSpreadThreads) {
    count[b] = 0;
    mass[b] = 0;
    kept[b] = 0;
  }
  __syncthreads();
  if (!filter.valid) return;  // the same for the whole block
  const float top = filter.top, scale = filter.scale, temperature = params.temperature;
  const unsigned lo_key = filter.lo_key;
  const u64 threshold = sampling::min_p_threshold(params.min_p);
  const bool track_kept = threshold > 1;  // else every positive weight is kept
  int begin = 0, end = 0;
  chunk_of(vocab, begin, end);
  for (int i = begin + tid; i < end; i += kSpreadThreads) {
    const float score = scores[i];
    if (score_key(score) <= lo_key) continue;
    const int b = bucket_of(score, top, scale);
    atomicAdd(&count[b], 1u);
    const u64 w = sampling::candidate_weight(score, top, temperature);
    if (w == 0) continue;
    atomicAdd(&mass[b], w);
    if (track_kept && w >= threshold) atomicAdd(&kept[b], w);
  }
  __syncthreads();
  for (int b = tid; b < kBuckets; b += kSpreadThreads) {  // most buckets are empty
    if (count[b] != 0) atomicAdd(&state.count[b], count[b]);
    if (mass[b] != 0) atomicAdd(&state.mass[b], mass[b]);
    if (kept[b] != 0) atomicAdd(&state.kept[b], kept[b]);
  }
}

struct PlanShared {
  ScanShared scan;
  int bin;
  u64 before;
};

struct Crossing {
  int bin;     // the first bucket where the running sum reaches the goal
  u64 before;  // the sum over the buckets above it
};

// Over buckets 0.. (each thread owns kBuckets / kSpreadThreads consecutive ones): the first at
// which the running sum of value(b) reaches goal, 0 < goal <= the sum over all buckets.
template <typename Value>
__device__ Crossing find_crossing(Value value, u64 goal, PlanShared& shared) {
  constexpr int kRun = kBuckets / kSpreadThreads;
  const int base = static_cast<int>(threadIdx.x) * kRun;
  u64 own = 0;
  for (int j = 0; j < kRun; ++j) own += value(base + j);
  const Scan scan = block_scan<kSpreadWarps>(own, shared.scan);  // begins with a barrier
  if (threadIdx.x == 0) shared.bin = kBuckets - 1;  // unreachable for a goal within the total
  __syncthreads();
  if (scan.before < goal && goal <= scan.before + own) {
    u64 before = scan.before;
    for (int j = 0; j < kRun; ++j) {
      const u64 v = value(base + j);
      if (before + v >= goal) {
        shared.bin = base + j;
        shared.before = before;
        break;
      }
      before += v;
    }
  }
  __syncthreads();
  return {shared.bin, shared.before};
}

// Kernel 3: the plan from the histograms (every block computes it, block 0 keeps it), then the
// block's candidates of the cut's buckets go to the list.
__global__ void __launch_bounds__(kSpreadThreads) spread_gather_kernel(SampleParams params) {
  begin_after_prior_kernels();
  __shared__ PlanShared shared;
  const int row = static_cast<int>(blockIdx.y), tid = static_cast<int>(threadIdx.x);
  const int vocab = static_cast<int>(params.vocab);
  const float* scores = params.scores + static_cast<int64_t>(row) * params.vocab;
  RowState& state = row_state(params, row);
  const bool leader = blockIdx.x == 0 && tid == 0;
  if (!state.valid) {
    if (leader) state.mode = kGeneral;
    return;
  }
  const bool track_kept = sampling::min_p_threshold(params.min_p) > 1;
  constexpr int kRun = kBuckets / kSpreadThreads;
  u64 own_count = 0, own_mass = 0, own_kept = 0;
  for (int j = 0; j < kRun; ++j) {
    const int b = tid * kRun + j;
    own_count += state.count[b];
    own_mass += state.mass[b];
    own_kept += track_kept ? state.kept[b] : state.mass[b];
  }
  const u64 total_count = block_scan<kSpreadWarps>(own_count, shared.scan).total;
  const u64 total_mass = block_scan<kSpreadWarps>(own_mass, shared.scan).total;
  const u64 total_kept = block_scan<kSpreadWarps>(own_kept, shared.scan).total;
  // P holds the best candidate (weight 2^40, kept whatever min-p says), so the totals are > 0.
  int mode = kGeneral, cut = 0;
  u64 list_size = 0, kept_before = 0;
  if (params.top_k > 0 && static_cast<u64>(params.top_k) < total_count) {
    const Crossing c = find_crossing([&](int b) { return u64{state.count[b]}; },
                                     static_cast<u64>(params.top_k), shared);
    mode = kTopK;
    cut = c.bin;
    list_size = c.before + state.count[cut];
  } else if (params.top_p < 1.0f) {
    const u64 need = sampling::top_p_need(params.top_p, total_mass);
    const Crossing c = find_crossing([&](int b) { return state.mass[b]; }, need, shared);
    mode = kTopP;
    cut = c.bin;
    u64 own = 0;  // P's candidates in buckets 0..cut
    for (int j = 0; j < kRun; ++j) {
      const int b = tid * kRun + j;
      if (b <= cut) own += state.count[b];
    }
    list_size = block_scan<kSpreadWarps>(own, shared.scan).total;
  } else {
    const u64 target = sampling::draw_target(params.uniforms[row], total_kept);
    const Crossing c = find_crossing(
        [&](int b) { return track_kept ? state.kept[b] : state.mass[b]; }, target + 1, shared);
    mode = kDraw;
    cut = c.bin;
    kept_before = c.before;
    list_size = state.count[cut];
  }
  if (list_size > static_cast<u64>(kListCap)) mode = kGeneral;  // too many to sort in one block
  if (leader) {
    state.mode = mode;
    state.total = total_mass;
    state.kept_total = total_kept;
    state.kept_before = kept_before;
  }
  if (mode == kGeneral) return;
  const float top = state.top, scale = state.scale;
  const unsigned lo_key = state.lo_key;
  int begin = 0, end = 0;
  chunk_of(vocab, begin, end);
  for (int i = begin + tid; i < end; i += kSpreadThreads) {
    const float score = scores[i];
    const unsigned key = score_key(score);
    if (key <= lo_key) continue;
    const int b = bucket_of(score, top, scale);
    if (mode == kDraw ? b != cut : b > cut) continue;
    const unsigned slot = atomicAdd(&state.list_size, 1u);
    if (slot < static_cast<unsigned>(kListCap)) state.list[slot] = candidate_key(key, i);
  }
}

struct ListShared {
  u64 keys[kListCap];
  ScanShared scan;
  int result;
};

// Kernel 4's fast path: choose_token's walk over the sorted list (see the top of the file).
__device__ int choose_from_list(const SampleParams& params, const float* scores,
                                const RowState& state, ListShared& shared) {
  const int tid = static_cast<int>(threadIdx.x);
  const int mode = state.mode;
  const int n = static_cast<int>(min(state.list_size, static_cast<unsigned>(kListCap)));
  int padded = 1;
  while (padded < n) padded *= 2;
  for (int i = tid; i < padded; i += kThreads) shared.keys[i] = i < n ? state.list[i] : 0;
  __syncthreads();
  // Bitonic sort, largest key first (padding, key 0, sorts last).
  for (int size = 2; size <= padded; size *= 2) {
    for (int stride = size / 2; stride > 0; stride /= 2) {
      for (int i = tid; i < padded; i += kThreads) {
        const int other = i ^ stride;
        if (other <= i) continue;
        const u64 a = shared.keys[i], b = shared.keys[other];
        if ((i & size) == 0 ? a < b : a > b) {
          shared.keys[i] = b;
          shared.keys[other] = a;
        }
      }
      __syncthreads();
    }
  }

  // This thread's items: [base, base + kListItems). Top-k keeps the first k of P.
  const int base = tid * kListItems;
  const int in_top_k = mode == kTopK ? static_cast<int>(params.top_k) : n;
  const float top = state.top, temperature = params.temperature;
  u64 weight[kListItems];
  u64 own = 0;
  for (int j = 0; j < kListItems; ++j) {
    const int i = base + j;
    weight[j] =
        i < n && i < in_top_k
            ? sampling::candidate_weight(scores[candidate_index(shared.keys[i])], top, temperature)
            : 0;
    own += weight[j];
  }
  Scan scan = block_scan<kWarps>(own, shared.scan);
  // kTopK: the list holds all of top-k; kTopP: the list is a prefix of P, whose total is known.
  const u64 total = mode == kTopK ? scan.total : state.total;

  int keep = n;  // the top-p prefix: items [0, keep)
  if (mode != kDraw && params.top_p < 1.0f) {
    const u64 need = sampling::top_p_need(params.top_p, total);
    if (tid == 0) shared.result = n;
    __syncthreads();
    u64 mass = scan.before;
    for (int j = 0; j < kListItems; ++j) {
      mass += weight[j];
      if (weight[j] > 0 && mass >= need && mass - weight[j] < need) shared.result = base + j + 1;
    }
    __syncthreads();
    keep = shared.result;
  }
  const u64 threshold = sampling::min_p_threshold(params.min_p);
  own = 0;
  for (int j = 0; j < kListItems; ++j) {
    if (base + j >= keep || weight[j] == 0 || weight[j] < threshold) weight[j] = 0;
    own += weight[j];
  }
  scan = block_scan<kWarps>(own, shared.scan);
  // kDraw: the list is one bucket; the kept weight of P and of the buckets above are known.
  const u64 kept_total = mode == kDraw ? state.kept_total : scan.total;
  const u64 goal = sampling::draw_target(params.uniforms[blockIdx.x], kept_total) + 1;
  if (tid == 0) shared.result = state.first;  // unreachable: the goal is within the list
  __syncthreads();
  u64 mass = (mode == kDraw ? state.kept_before : 0) + scan.before;
  for (int j = 0; j < kListItems; ++j) {
    mass += weight[j];
    if (weight[j] > 0 && mass >= goal && mass - weight[j] < goal) {
      shared.result = static_cast<int>(candidate_index(shared.keys[base + j]));
    }
  }
  __syncthreads();
  return shared.result;
}

// Kernel 4, one block per row: the pick from the sorted list, or the general path.
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleParams params) {
  begin_after_prior_kernels();
  union Shared {
    SelectShared select;
    ListShared list;
  };
  __shared__ Shared shared;
  const int row = static_cast<int>(blockIdx.x);
  const RowState& state = row_state(params, row);
  const float* scores = params.scores + static_cast<int64_t>(row) * params.vocab;
  const int chosen = state.mode == kGeneral ? general_choice(params, shared.select)
                                            : choose_from_list(params, scores, state, shared.list);
  if (threadIdx.x == 0) params.out[row] = chosen;
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

size_t sample_rows_scratch_bytes(int64_t rows, int64_t vocab) {
  return static_cast<size_t>(rows * vocab) * sizeof(u64) +
         static_cast<size_t>(rows) * sizeof(RowState);
}

void sample_rows(const SampleParams& params, cudaStream_t stream) {
  if (params.rows == 0 || params.vocab == 0) return;
  constexpr int64_t kPerBlock = int64_t{kSpreadThreads} * kSpreadItems;
  const auto spread = static_cast<unsigned>(
      std::min<int64_t>(kMaxSpread, (params.vocab + kPerBlock - 1) / kPerBlock));
  const dim3 grid(spread, static_cast<unsigned>(params.rows));
  launch_kernel(spread_max_kernel, grid, kSpreadThreads, 0, stream, params);
  launch_kernel(spread_weigh_kernel, grid, kSpreadThreads, 0, stream, params);
  launch_kernel(spread_gather_kernel, grid, kSpreadThreads, 0, stream, params);
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
