#include "flow2/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "flow2/error.h"

namespace flow2 {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Whether a choice needs no history: the token chosen on a device can feed the next step before
// the host has seen it.
bool penalties_off(const SamplingOptions& options) {
  return options.repetition_penalty == 1.0f && options.presence_penalty == 0.0f &&
         options.frequency_penalty == 0.0f;
}

}  // namespace

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

GenerationSession::GenerationSession(Model& model, int64_t context_length)
    : model_(model), cache_(model.make_cache(1, context_length)) {}

GenerationResult GenerationSession::generate(std::span<const int32_t> context,
                                             const GenerationOptions& options,
                                             const TokenCallback& on_token) {
  check(!context.empty(), "generate: the prompt is empty");
  check(options.max_new_tokens >= 0, "generate: max tokens must not be negative");
  const int64_t needed = static_cast<int64_t>(context.size()) + options.max_new_tokens;
  check(needed <= cache_.capacity(),
        "prompt of {} tokens plus {} new ones exceeds the context of {} tokens", context.size(),
        options.max_new_tokens, cache_.capacity());
  GenerationResult result;
  result.stop_reason = "length";
  if (options.max_new_tokens == 0) return result;

  // Reuse the cached prefix; at least one token must run to produce logits.
  size_t reused = 0;
  while (reused < cached_.size() && reused < context.size() && cached_[reused] == context[reused]) {
    ++reused;
  }
  if (reused == context.size()) --reused;
  cache_.truncate(static_cast<int64_t>(reused));
  cached_.resize(reused);

  Sampler sampler(options.sampling);
  std::vector<int32_t> history(context.begin(), context.end());
  Backend& backend = model_.backend();
  // The choice is made where the logits are: only the token comes back. Where the backend keeps
  // it on its device as well (and no penalty needs it on the host first), decoding runs a step
  // ahead: the step that feeds token N is queued before the host reads N back.
  if (!device_ids_.defined()) device_ids_ = backend.make_token_ids(1);
  const bool pipelined = device_ids_.defined() && penalties_off(options.sampling);
  Tensor& device_ids = device_ids_;
  auto choose = [&](const Tensor& logits) {
    if (sampler.plain_greedy()) return backend.argmax_rows(logits)[0];
    const double u = sampler.next_uniform();
    return backend.sample_rows(logits, options.sampling, history, {&u, 1})[0];
  };
  auto choose_on_device = [&](const Tensor& logits) {  // the same draws as choose
    const double u = sampler.plain_greedy() ? 0.0 : sampler.next_uniform();
    return backend.choose_into(device_ids, logits, options.sampling, {&u, 1});
  };
  auto start = std::chrono::steady_clock::now();
  // The prompt runs in chunks so that activations stay small for long prompts.
  constexpr size_t kChunk = 512;
  Tensor logits;
  for (size_t begin = reused; begin < context.size(); begin += kChunk) {
    auto chunk = context.subspan(begin, std::min(kChunk, context.size() - begin));
    logits = model_.forward(chunk, 1, cache_, LogitRows::Last);
    cached_.insert(cached_.end(), chunk.begin(), chunk.end());
  }
  result.prompt_tokens_computed = static_cast<int64_t>(context.size() - reused);
  int32_t next = pipelined ? backend.chosen_ids(choose_on_device(logits))[0] : choose(logits);
  result.prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  // Emits `token`; true where it ends generation (the callback or a stop id).
  auto ends_with = [&](int32_t token) {
    result.ids.push_back(token);
    history.push_back(token);
    if (on_token && !on_token(token)) {
      result.stop_reason = "stopped";
      return true;
    }
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), token) !=
        options.stop_ids.end()) {
      result.stop_reason = "stop_id";
      return true;
    }
    return false;
  };
  while (pipelined) {
    // A token that ends generation has had its step queued: its keys stay in the cache (as
    // cached_ records) and that step's choice is dropped.
    const bool more = static_cast<int64_t>(result.ids.size()) + 1 < options.max_new_tokens;
    int64_t ticket = -1;
    if (more) {
      logits = model_.forward(device_ids, 1, cache_, LogitRows::Last);
      cached_.push_back(next);
      ticket = choose_on_device(logits);
    }
    if (ends_with(next) || !more) break;
    next = backend.chosen_ids(ticket)[0];
  }
  while (!pipelined) {
    if (ends_with(next) || static_cast<int64_t>(result.ids.size()) >= options.max_new_tokens) {
      break;
    }
    logits = model_.forward(std::span<const int32_t>(&next, 1), 1, cache_, LogitRows::Last);
    cached_.push_back(next);
    next = choose(logits);
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

std::vector<int32_t> decode_greedy(Model& model, KVCache& cache, int32_t first, int64_t steps) {
  Backend& backend = model.backend();
  std::vector<int32_t> chosen;
  if (steps <= 0) return chosen;
  Tensor logits = model.forward(std::span<const int32_t>(&first, 1), 1, cache, LogitRows::Last);
  Tensor ids = backend.make_token_ids(1);
  if (!ids.defined()) {
    chosen.push_back(backend.argmax_rows(logits)[0]);
    for (int64_t step = 1; step < steps; ++step) {
      logits =
          model.forward(std::span<const int32_t>(&chosen.back(), 1), 1, cache, LogitRows::Last);
      chosen.push_back(backend.argmax_rows(logits)[0]);
    }
    return chosen;
  }
  const SamplingOptions greedy;
  const double u = 0.0;
  int64_t ticket = backend.choose_into(ids, logits, greedy, {&u, 1});
  for (int64_t step = 1; step < steps; ++step) {
    logits = model.forward(ids, 1, cache, LogitRows::Last);  // the token not yet read back
    const int64_t following = backend.choose_into(ids, logits, greedy, {&u, 1});
    chosen.push_back(backend.chosen_ids(ticket)[0]);
    ticket = following;
  }
  chosen.push_back(backend.chosen_ids(ticket)[0]);
  return chosen;
}

GenerationResult generate(Model& model, std::span<const int32_t> prompt,
                          const GenerationOptions& options, const TokenCallback& on_token) {
  GenerationSession session(
      model, std::max<int64_t>(1, static_cast<int64_t>(prompt.size()) + options.max_new_tokens));
  return session.generate(prompt, options, on_token);
}

double log_probability(std::span<const float> logits, int32_t target) {
  double max_logit = *std::max_element(logits.begin(), logits.end());
  double total = 0.0;
  for (float logit : logits) total += std::exp(logit - max_logit);
  return logits[target] - max_logit - std::log(total);
}

PerplexityResult perplexity(Model& model, std::span<const int32_t> ids, int64_t context) {
  check(ids.size() >= 2, "perplexity needs at least 2 tokens, got {}", ids.size());
  const int64_t count = static_cast<int64_t>(ids.size());
  if (context <= 0) context = count;
  check(context >= 2, "perplexity needs a context of at least 2 tokens");
  // Windows of `context` tokens, each starting half a window after the last; every token is
  // scored once, in the first window where it is not the window's first token.
  const int64_t stride = std::max<int64_t>(1, context / 2);
  const int64_t vocab = model.config().vocab_size;
  KVCache cache = model.make_cache(1, std::min(context, count));
  double total = 0.0;
  int64_t scored_until = 0;  // targets [1, scored_until] are done
  for (int64_t begin = 0; scored_until < count - 1; begin += stride) {
    const int64_t end = std::min(begin + context, count);
    cache.clear();
    std::vector<float> logits =
        model.backend().to_host(model.forward(ids.subspan(begin, end - begin), 1, cache));
    for (int64_t target = std::max(begin + 1, scored_until + 1); target < end; ++target) {
      std::span<const float> row(logits.data() + (target - 1 - begin) * vocab,
                                 static_cast<size_t>(vocab));
      total -= log_probability(row, ids[target]);
    }
    scored_until = end - 1;
  }
  PerplexityResult result;
  result.tokens = count;
  result.nll = total / static_cast<double>(count - 1);
  result.perplexity = std::exp(result.nll);
  return result;
}

}  // namespace flow2
