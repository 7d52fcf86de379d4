// Text generation from token ids: prefill the prompt, then decode one token at a time from the
// KV cache.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "flow2/model.h"
#include "flow2/sampler.h"

namespace flow2 {

struct GenerationOptions {
  int64_t max_new_tokens = 16;
  SamplingOptions sampling;       // temperature 0: greedy
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these
};

struct GenerationResult {
  std::vector<int32_t> ids;            // the new tokens only
  std::string stop_reason;             // "stop_id", "stopped" (by the callback) or "length"
  int64_t prompt_tokens_computed = 0;  // prompt tokens run through the model (not reused)
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Receives each new token as soon as it is chosen; returning false ends generation (a stop
// string appeared, say).
using TokenCallback = std::function<bool(int32_t)>;

// Generation that keeps its KV cache between calls: a call gets the whole context (a chat's
// conversation so far) and only the part after what the cache already holds is computed.
class GenerationSession {
 public:
  GenerationSession(Model& model, int64_t context_length);
  GenerationResult generate(std::span<const int32_t> context, const GenerationOptions& options,
                            const TokenCallback& on_token = {});
  int64_t context_length() const { return cache_.capacity(); }

 private:
  Model& model_;
  KVCache cache_;
  std::vector<int32_t> cached_;  // the tokens whose keys and values the cache holds
  // The token chosen on the device for the next step (pipelined decoding), made on first use and
  // kept, so that every call's steps have the same inputs and replay the same graph.
  Tensor device_ids_;
};

// Greedy decoding of `steps` tokens into `cache` (one sequence) after `first`, each fed back:
// the benchmarks' generation, run as generate runs it (a step ahead of the host where the
// backend keeps chosen tokens on its device). Returns the tokens chosen.
std::vector<int32_t> decode_greedy(Model& model, KVCache& cache, int32_t first, int64_t steps);

// One-shot generation after `prompt`.
GenerationResult generate(Model& model, std::span<const int32_t> prompt,
                          const GenerationOptions& options, const TokenCallback& on_token = {});

// Index of the largest logit (the first one on ties, as torch.argmax).
int32_t argmax(std::span<const float> logits);

struct PerplexityResult {
  int64_t tokens = 0;
  double nll = 0;  // mean negative log-likelihood of tokens 2..N given their prefixes
  double perplexity = 0;
};

// With `context` > 0, longer inputs are scored in windows of that many tokens that advance by
// half a window (each token predicted from at least half a window of context, as llama.cpp's
// and transformers' strided evaluations do).
PerplexityResult perplexity(Model& model, std::span<const int32_t> ids, int64_t context = 0);

// log softmax(logits)[target], computed in double precision.
double log_probability(std::span<const float> logits, int32_t target);

}  // namespace flow2
