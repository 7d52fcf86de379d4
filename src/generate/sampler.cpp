#include "flow2/sampler.h"

#include <algorithm>
#include <functional>

#include "flow2/backend.h"
#include "flow2/error.h"
#include "generate/sampling_math.h"

namespace flow2 {

void check_sampling_options(const SamplingOptions& options) {
  check(options.temperature >= 0.0f, "temperature must not be negative");
  check(options.top_k >= 0, "top-k must not be negative");
  check(options.top_p > 0.0f && options.top_p <= 1.0f, "top-p must be in (0, 1]");
  check(options.min_p >= 0.0f && options.min_p <= 1.0f, "min-p must be in [0, 1]");
  check(options.repetition_penalty > 0.0f, "repetition penalty must be positive");
}

std::vector<PenaltyEntry> penalty_entries(const SamplingOptions& options,
                                          std::span<const int32_t> history, int64_t vocab) {
  std::vector<PenaltyEntry> entries;
  // Penalties over the recent window (transformers' repetition penalty, OpenAI's presence and
  // frequency penalties).
  const size_t window =
      std::min(history.size(), static_cast<size_t>(std::max(options.penalty_window, 0)));
  if (window == 0 || (options.repetition_penalty == 1.0f && options.presence_penalty == 0.0f &&
                      options.frequency_penalty == 0.0f)) {
    return entries;
  }
  std::vector<int32_t> ids;
  for (int32_t id : history.last(window)) {
    if (id >= 0 && id < vocab) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  for (size_t begin = 0, end = 0; begin < ids.size(); begin = end) {
    while (end < ids.size() && ids[end] == ids[begin]) ++end;
    const auto count = static_cast<float>(end - begin);
    entries.push_back({ids[begin], options.presence_penalty + options.frequency_penalty * count});
  }
  return entries;
}

void apply_penalties(std::span<float> scores, const SamplingOptions& options,
                     std::span<const int32_t> history) {
  for (const PenaltyEntry& entry :
       penalty_entries(options, history, static_cast<int64_t>(scores.size()))) {
    float& score = scores[static_cast<size_t>(entry.id)];
    score = sampling::penalized_score(score, options.repetition_penalty, entry.amount);
  }
}

namespace {

void check_uniform(double u) {
  check(u >= 0.0 && u < 1.0, "sampling: the uniform draw {} is outside [0, 1)", u);
}

}  // namespace

void check_sample_rows(int64_t rows, const SamplingOptions& options,
                       std::span<const double> uniforms) {
  check_sampling_options(options);
  check(static_cast<int64_t>(uniforms.size()) == rows,
        "sample_rows: {} uniform draws for {} rows of logits", uniforms.size(), rows);
  for (double u : uniforms) check_uniform(u);
}

int32_t choose_token(std::span<const float> scores, const SamplingOptions& options, double u) {
  check_sampling_options(options);
  check(!scores.empty(), "sampling: there are no scores to choose from");
  check(static_cast<int64_t>(scores.size()) <= sampling::kMaxVocab,
        "sampling: a row of {} scores is longer than the {} sampling takes", scores.size(),
        sampling::kMaxVocab);
  check_uniform(u);
  if (options.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
  }

  // Candidate keys order by score, then lower index first; top-k keeps the k largest.
  std::vector<uint64_t> keys(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    keys[i] = sampling::candidate_key(sampling::score_key(scores[i]), static_cast<uint32_t>(i));
  }
  if (options.top_k > 0 && static_cast<size_t>(options.top_k) < keys.size()) {
    const auto k = static_cast<std::ptrdiff_t>(options.top_k);
    std::nth_element(keys.begin(), keys.begin() + k - 1, keys.end(), std::greater<>());
    keys.resize(static_cast<size_t>(k));
  }
  const uint64_t first = *std::max_element(keys.begin(), keys.end());
  const float top = scores[sampling::candidate_index(first)];

  // Candidates that weigh 0 neither move a cumulative weight nor get drawn: only the others are
  // sorted.
  struct Candidate {
    uint64_t key;
    uint64_t weight;
  };
  std::vector<Candidate> candidates;
  uint64_t total = 0;
  for (uint64_t key : keys) {
    const uint64_t weight = sampling::candidate_weight(scores[sampling::candidate_index(key)], top,
                                                       options.temperature);
    if (weight == 0) continue;
    candidates.push_back({key, weight});
    total += weight;
  }
  if (total == 0) return static_cast<int32_t>(sampling::candidate_index(first));  // top is inf/NaN
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.key > b.key; });

  size_t keep = candidates.size();
  if (options.top_p < 1.0f) {  // the smallest prefix whose weight reaches top_p of the total
    const uint64_t need = sampling::top_p_need(options.top_p, total);
    uint64_t mass = 0;
    keep = 0;
    while (mass < need) mass += candidates[keep++].weight;
  }
  const uint64_t threshold = sampling::min_p_threshold(options.min_p);
  uint64_t kept = 0;
  for (size_t i = 0; i < keep; ++i) {
    if (candidates[i].weight >= threshold) kept += candidates[i].weight;
  }
  const uint64_t target = sampling::draw_target(u, kept);
  uint64_t mass = 0;
  for (size_t i = 0; i < keep; ++i) {
    if (candidates[i].weight < threshold) continue;
    mass += candidates[i].weight;
    if (mass > target) return static_cast<int32_t>(sampling::candidate_index(candidates[i].key));
  }
  fail("sampling: no candidate reached the draw's target");  // target < kept: cannot happen
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  check_sampling_options(options);
}

double Sampler::next_uniform() {
  // 53 random bits scaled exactly: in [0, 1), and the same with every standard library
  // (std::generate_canonical's algorithm is not specified that closely).
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  scratch_.assign(logits.begin(), logits.end());
  apply_penalties(scratch_, options_, history);
  return choose_token(scratch_, options_, next_uniform());
}

// Backend::sample_rows for backends whose logits the host can read: the CPU's choice per row.
std::vector<int32_t> Backend::sample_rows(const Tensor& logits, const SamplingOptions& options,
                                          std::span<const int32_t> history,
                                          std::span<const double> uniforms) {
  const int64_t rows = logits.rows(), width = logits.cols();
  check_sample_rows(rows, options, uniforms);
  std::vector<int32_t> tokens;
  if (rows == 0) return tokens;
  const std::vector<float> values = to_host(logits);
  std::vector<float> row_scores;
  for (int64_t row = 0; row < rows; ++row) {
    const auto begin = values.begin() + row * width;
    row_scores.assign(begin, begin + width);
    apply_penalties(row_scores, options, history);
    tokens.push_back(choose_token(row_scores, options, uniforms[static_cast<size_t>(row)]));
  }
  return tokens;
}

}  // namespace flow2
