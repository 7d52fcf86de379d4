// Choosing the next token from logits: greedy, or sampling with temperature, top-k, top-p and
// min-p, after repetition / presence / frequency penalties on recent tokens; seeded.
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

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // Picks a token from `logits`, penalizing what `history` holds (the latest tokens last).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  // Greedy with no penalties: the choice is the logits' argmax, which a backend can find where
  // the logits are (Backend::argmax_rows).
  bool plain_greedy() const {
    return options_.temperature == 0.0f && options_.repetition_penalty == 1.0f &&
           options_.presence_penalty == 0.0f && options_.frequency_penalty == 0.0f;
  }

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;
};

}  // namespace flow2
