// The arithmetic that decides a sampled token, shared by the CPU sampler (sampler.cpp) and the
// CUDA kernel (cuda_sampling.cu) so that both compute the same bits for the same scores.
//
// Why it is exact: a candidate's weight, e^((score - top) / temperature), is computed in double
// from IEEE-rounded operations and explicit fused multiply-adds only (no library exp, whose last
// bit differs between glibc and CUDA; nothing a compiler could contract differently), then held
// as an integer in units of 2^-40. Sums of integers do not depend on their order, so the CPU's
// sequential sums and the GPU's atomic histograms agree exactly, and every filter and the draw
// compare integers. Masses in float, or double sums in different orders, would move a total by
// an ulp and could flip a pick whose cumulative mass lies that close to a top-p or draw boundary.
// The price: a candidate whose weight is below 2^-40 (about 1e-12) of the best one's counts as 0
// and is never drawn.
//
// Kept free of C++20 so that nvcc compiles it too.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FLOW2_SAMPLING_FN __host__ __device__ inline
#else
#define FLOW2_SAMPLING_FN inline
#endif

#if defined(__CUDA_ARCH__)
#define FLOW2_SAMPLING_MATH(f) ::f
#else
#define FLOW2_SAMPLING_MATH(f) std::f
#endif

namespace flow2::sampling {

// Weights are integers in units of 2^-40; the best candidate weighs exactly 2^40.
constexpr int kWeightBits = 40;
constexpr uint64_t kTopWeight = uint64_t{1} << kWeightBits;
// The most candidates a row may have: their weights then sum to at most 2^63.
constexpr int64_t kMaxVocab = int64_t{1} << 23;

// Candidates are ordered by this key, largest first: the score's bits turned into an unsigned
// integer that orders as the floats do (-0 just below +0; NaN lowest of all).
FLOW2_SAMPLING_FN uint32_t score_key(float score) {
  if (score != score) return 0;
  uint32_t bits = 0;
  memcpy(&bits, &score, sizeof(bits));
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

FLOW2_SAMPLING_FN float key_score(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  float score = 0;
  memcpy(&score, &bits, sizeof(score));
  return score;
}

// The score key, then the lower index first on equal keys: a total order of a row's candidates.
FLOW2_SAMPLING_FN uint64_t candidate_key(uint32_t score_key_value, uint32_t index) {
  return (uint64_t{score_key_value} << 32) | (0xffffffffu - index);
}
FLOW2_SAMPLING_FN uint32_t candidate_index(uint64_t key) {
  return 0xffffffffu - static_cast<uint32_t>(key);
}

// e^x for -28 <= x <= 0: x = k ln 2 + r with |r| <= ln(2) / 2, e^r by its Taylor series to r^11
// (truncation below 1e-14, far below the 2^-40 units the weights keep), times 2^k (exact).
FLOW2_SAMPLING_FN double exp_nonpositive(double x) {
  const double k = FLOW2_SAMPLING_MATH(rint)(x * 0x1.71547652b82fep+0);  // x / ln 2
  double r = FLOW2_SAMPLING_MATH(fma)(-k, 0x1.62e42feep-1, x);           // ln 2, high part
  r = FLOW2_SAMPLING_MATH(fma)(-k, 0x1.a39ef35793c76p-33, r);            // ln 2, low part
  double p = 0x1.ae64567f544e4p-26;                                      // 1/11!
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.27e4fb7789f5cp-22);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.71de3a556c734p-19);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.a01a01a01a01ap-16);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.a01a01a01a01ap-13);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.6c16c16c16c17p-10);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.1111111111111p-7);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.5555555555555p-5);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0x1.5555555555555p-3);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 0.5);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 1.0);
  p = FLOW2_SAMPLING_MATH(fma)(p, r, 1.0);
  return FLOW2_SAMPLING_MATH(ldexp)(p, static_cast<int>(k));
}

// A candidate's weight relative to the best one (score `top`): e^((score - top) / temperature)
// in units of 2^-40, rounded down; 0 for NaN and below e^-28 (where the units give 0 anyway).
FLOW2_SAMPLING_FN uint64_t candidate_weight(float score, float top, float temperature) {
  const double x =
      (static_cast<double>(score) - static_cast<double>(top)) / static_cast<double>(temperature);
  if (!(x >= -28.0)) return 0;
  if (x >= 0.0) return kTopWeight;
  return static_cast<uint64_t>(exp_nonpositive(x) * static_cast<double>(kTopWeight));
}

// The weight the top-p prefix must reach: ceil(top_p * total), within [1, total].
FLOW2_SAMPLING_FN uint64_t top_p_need(float top_p, uint64_t total) {
  const double need =
      FLOW2_SAMPLING_MATH(ceil)(static_cast<double>(top_p) * static_cast<double>(total));
  if (!(need >= 1.0)) return 1;
  // (double)total may round up past total; a double below it is at most total.
  if (need >= static_cast<double>(total)) return total;
  return static_cast<uint64_t>(need);
}

// Min-p keeps candidates whose weight reaches min_p times the best one's.
FLOW2_SAMPLING_FN uint64_t min_p_threshold(float min_p) {
  return static_cast<uint64_t>(
      FLOW2_SAMPLING_MATH(ceil)(static_cast<double>(min_p) * static_cast<double>(kTopWeight)));
}

// The draw picks the first kept candidate whose cumulative weight exceeds this, floor(u * total)
// for u in [0, 1), kept below total.
FLOW2_SAMPLING_FN uint64_t draw_target(double u, uint64_t total) {
  const double target = u * static_cast<double>(total);
  if (!(target >= 0.0)) return 0;
  if (target >= static_cast<double>(total)) return total - 1;
  const auto value = static_cast<uint64_t>(target);
  return value < total ? value : total - 1;
}

// transformers' repetition penalty (positive scores divided, others multiplied), then the
// presence and frequency penalties' `amount`. The multiply-subtract is fused explicitly so that
// host and device round it once, the same way.
FLOW2_SAMPLING_FN float penalized_score(float score, float repetition_penalty, float amount) {
#if defined(__CUDA_ARCH__)
  return score > 0.0f ? __fsub_rn(__fdiv_rn(score, repetition_penalty), amount)
                      : __fmaf_rn(score, repetition_penalty, -amount);
#else
  return score > 0.0f ? score / repetition_penalty - amount
                      : std::fma(score, repetition_penalty, -amount);
#endif
}

}  // namespace flow2::sampling
