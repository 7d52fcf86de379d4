#include "flow2/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "flow2/error.h"

namespace flow2 {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int32_t sample_with_temperature(std::span<const float> logits, float temperature,
                                std::mt19937_64& rng) {
  float max_logit = *std::max_element(logits.begin(), logits.end());
  std::vector<double> weights(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    weights[i] = std::exp((static_cast<double>(logits[i]) - max_logit) / temperature);
  }
  std::discrete_distribution<int32_t> distribution(weights.begin(), weights.end());
  return distribution(rng);
}

}  // namespace

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

GenerationResult generate(Model& model, std::span<const int32_t> prompt,
                          const GenerationOptions& options,
                          const std::function<void(int32_t)>& on_token) {
  check(!prompt.empty(), "generate: the prompt is empty");
  check(options.max_new_tokens >= 0, "generate: max tokens must not be negative");
  check(options.temperature >= 0.0f, "generate: temperature must not be negative");
  const int64_t capacity = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  KVCache cache = model.make_cache(1, capacity);
  std::mt19937_64 rng(options.seed);
  GenerationResult result;
  result.stop_reason = "length";
  if (options.max_new_tokens == 0) return result;

  auto choose = [&](const Tensor& logits) {
    std::vector<float> host = model.backend().to_host(logits);
    return options.temperature == 0.0f ? argmax(host)
                                       : sample_with_temperature(host, options.temperature, rng);
  };
  auto start = std::chrono::steady_clock::now();
  int32_t next = choose(model.forward(prompt, 1, cache, LogitRows::Last));
  result.prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  while (true) {
    result.ids.push_back(next);
    if (on_token) on_token(next);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) !=
        options.stop_ids.end()) {
      result.stop_reason = "stop_id";
      break;
    }
    if (static_cast<int64_t>(result.ids.size()) >= options.max_new_tokens) break;
    next = choose(model.forward(std::span<const int32_t>(&next, 1), 1, cache, LogitRows::Last));
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

double log_probability(std::span<const float> logits, int32_t target) {
  double max_logit = *std::max_element(logits.begin(), logits.end());
  double total = 0.0;
  for (float logit : logits) total += std::exp(logit - max_logit);
  return logits[target] - max_logit - std::log(total);
}

PerplexityResult perplexity(Model& model, std::span<const int32_t> ids) {
  check(ids.size() >= 2, "perplexity needs at least 2 tokens, got {}", ids.size());
  const int64_t count = static_cast<int64_t>(ids.size());
  KVCache cache = model.make_cache(1, count);
  std::vector<float> logits = model.backend().to_host(model.forward(ids, 1, cache));
  const int64_t vocab = model.config().vocab_size;
  double total = 0.0;
  for (int64_t t = 0; t + 1 < count; ++t) {
    std::span<const float> row(logits.data() + t * vocab, static_cast<size_t>(vocab));
    total -= log_probability(row, ids[t + 1]);
  }
  PerplexityResult result;
  result.tokens = count;
  result.nll = total / static_cast<double>(count - 1);
  result.perplexity = std::exp(result.nll);
  return result;
}

}  // namespace flow2
