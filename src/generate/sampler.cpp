#include "flow2/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "flow2/error.h"

namespace flow2 {

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  check(options.temperature >= 0.0f, "temperature must not be negative");
  check(options.top_k >= 0, "top-k must not be negative");
  check(options.top_p > 0.0f && options.top_p <= 1.0f, "top-p must be in (0, 1]");
  check(options.min_p >= 0.0f && options.min_p <= 1.0f, "min-p must be in [0, 1]");
  check(options.repetition_penalty > 0.0f, "repetition penalty must be positive");
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  scratch_.assign(logits.begin(), logits.end());
  std::vector<float>& scores = scratch_;
  const int32_t vocab = static_cast<int32_t>(scores.size());

  // Penalties over the recent window (transformers' repetition penalty, OpenAI's presence and
  // frequency penalties).
  size_t window =
      std::min(history.size(), static_cast<size_t>(std::max(options_.penalty_window, 0)));
  if (window > 0 && (options_.repetition_penalty != 1.0f || options_.presence_penalty != 0.0f ||
                     options_.frequency_penalty != 0.0f)) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t id : history.subspan(history.size() - window)) {
      if (id >= 0 && id < vocab) ++counts[id];
    }
    for (const auto& [id, count] : counts) {
      float& score = scores[id];
      score = score > 0 ? score / options_.repetition_penalty : score * options_.repetition_penalty;
      score -= options_.presence_penalty + options_.frequency_penalty * static_cast<float>(count);
    }
  }
  if (options_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
  }

  // Candidates by descending score; the filters keep a prefix of this order.
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  if (options_.top_k > 0) keep = std::min(keep, static_cast<size_t>(options_.top_k));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                    [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  order.resize(keep);

  std::vector<double> probabilities(keep);
  const double top = scores[order[0]];
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    probabilities[i] = std::exp((scores[order[i]] - top) / options_.temperature);
    total += probabilities[i];
  }
  for (auto& p : probabilities) p /= total;
  if (options_.top_p < 1.0f) {  // the smallest prefix whose mass reaches top_p
    double mass = 0.0;
    size_t cut = 0;
    while (cut < keep) {
      mass += probabilities[cut++];
      if (mass >= options_.top_p) break;
    }
    keep = cut;
  }
  if (options_.min_p > 0.0f) {
    const double threshold = options_.min_p * probabilities[0];
    size_t cut = 1;
    while (cut < keep && probabilities[cut] >= threshold) ++cut;
    keep = cut;
  }
  std::discrete_distribution<size_t> distribution(
      probabilities.begin(), probabilities.begin() + static_cast<std::ptrdiff_t>(keep));
  return order[distribution(rng_)];
}

}  // namespace flow2
