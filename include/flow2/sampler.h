// Choosing the next token from logits: greedy, or sampling with temperature, top-k, top-p and
// min-p, after repetition / presence / frequency penalties on recent tokens; seeded.
//
// The random draw is separate from the choice: a Sampler draws one uniform u in [0, 1) per token
// from its seeded generator, and choose_token, a pure function, picks the token from the
// penalized scores and u. A backend can then make the same choice where the logits are
// (Backend::sample_rows; the CUDA backend's kernel agrees with choose_token bit for bit).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace flow2 {

struct SamplingOptions {
  float temperature = 0.0f;         // 0: greedy
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off; keeps tokens with p >= min_p * p(max)
  float repetition_penalty = 1.0f;  // 1: off; as transformers (divides positive logits)
  float presence_penalty = 0.0f;    // subtracted once from tokens already seen
  float frequency_penalty = 0.0f;   // subtracted per occurrence
  int penalty_window = 64;          // how many recent tokens the penalties look at
  uint64_t seed = 0;
};

// Throws flow2::Error naming the first option out of range.
void check_sampling_options(const SamplingOptions& options);
// What Backend::sample_rows takes, on every backend: options in range and one uniform draw in
// [0, 1) per row of logits.
void check_sample_rows(int64_t rows, const SamplingOptions& options,
                       std::span<const double> uniforms);

// A token the penalties change: its score becomes
// penalized_score(score, repetition_penalty, amount) (sampling_math.h), where amount =
// presence_penalty + frequency_penalty * (occurrences in the window).
struct PenaltyEntry {
  int32_t id = 0;
  float amount = 0.0f;
};
// The distinct ids among the last penalty_window tokens of `history` that lie in [0, vocab),
// ascending; empty when no penalty is on.
std::vector<PenaltyEntry> penalty_entries(const SamplingOptions& options,
                                          std::span<const int32_t> history, int64_t vocab);
void apply_penalties(std::span<float> scores, const SamplingOptions& options,
                     std::span<const int32_t> history);

// The token sampling picks from `scores` (penalties already applied) with the uniform draw u in
// [0, 1). Temperature 0: the first largest score. Otherwise candidates in descending score order
// (equal scores: lower index first), the first top_k of them, weights e^((s - s_max) /
// temperature) (in double, kept as integers in units of 2^-40 of the best one's: see
// sampling_math.h), the smallest prefix whose weight reaches top_p of the total, then those
// whose weight reaches min_p times the best one's; the pick is the first kept candidate whose
// cumulative weight exceeds u times the kept total.
int32_t choose_token(std::span<const float> scores, const SamplingOptions& options, double u);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // The uniform draw for the next token: 53 bits of the seeded generator, in [0, 1).
  double next_uniform();
  // Picks a token from `logits`, penalizing what `history` holds (the latest tokens last), with
  // the next uniform draw.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  // Greedy with no penalties: the choice is the logits' argmax, which a backend can find where
  // the logits are (Backend::argmax_rows).
  bool plain_greedy() const {
    return options_.temperature == 0.0f && options_.repetition_penalty == 1.0f &&
           options_.presence_penalty == 0.0f && options_.frequency_penalty == 0.0f;
  }
  const SamplingOptions& options() const { return options_; }

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;
};

}  // namespace flow2
