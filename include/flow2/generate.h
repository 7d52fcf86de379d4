// Text generation from token ids: prefill the prompt, then decode one token at a time from the
// KV cache.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "flow2/model.h"

namespace flow2 {

struct GenerationOptions {
  int64_t max_new_tokens = 16;
  float temperature = 0.0f;  // 0: greedy (argmax)
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these
};

struct GenerationResult {
  std::vector<int32_t> ids;  // the new tokens only
  std::string stop_reason;   // "stop_id" or "length"
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Calls `on_token` with each new token as soon as it is chosen.
GenerationResult generate(Model& model, std::span<const int32_t> prompt,
                          const GenerationOptions& options,
                          const std::function<void(int32_t)>& on_token = {});

// Index of the largest logit (the first one on ties, as torch.argmax).
int32_t argmax(std::span<const float> logits);

struct PerplexityResult {
  int64_t tokens = 0;
  double nll = 0;  // mean negative log-likelihood of tokens 2..N given their prefixes
  double perplexity = 0;
};

PerplexityResult perplexity(Model& model, std::span<const int32_t> ids);

// log softmax(logits)[target], computed in double precision.
double log_probability(std::span<const float> logits, int32_t target);

}  // namespace flow2
