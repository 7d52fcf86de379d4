// The CPU sampler: choose_token against a slow reference written from the definition (a full
// sort and std::exp), the filters' properties, the frequencies of seeded draws against the
// filtered softmax, the penalties' formula, seeding, and the option errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

#include "flow2/error.h"
#include "flow2/sampler.h"
#include "generate/sampling_math.h"

namespace flow2 {
namespace {

SamplingOptions with_temperature(float temperature) {
  SamplingOptions options;
  options.temperature = temperature;
  return options;
}

int32_t first_argmax(const std::vector<float>& scores) {
  return static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
}

struct Kept {
  int32_t id;
  double mass;
};

// The candidates sampling keeps, in order, with their unnormalized softmax masses: a stable sort
// by descending score (equal scores: lower index first), the first top_k, the smallest prefix
// whose mass reaches top_p of the total, then those with mass >= min_p times the best one's.
std::vector<Kept> reference_kept(const std::vector<float>& scores, const SamplingOptions& options) {
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  if (options.top_k > 0 && static_cast<size_t>(options.top_k) < order.size()) {
    order.resize(static_cast<size_t>(options.top_k));
  }
  const double top = scores[order[0]];
  std::vector<double> masses;
  double total = 0;
  for (int32_t id : order) {
    masses.push_back(std::exp((scores[id] - top) / options.temperature));
    total += masses.back();
  }
  size_t keep = order.size();
  if (options.top_p < 1.0f) {
    double mass = 0;
    keep = 0;
    while (keep < order.size()) {
      mass += masses[keep++];
      if (mass >= options.top_p * total) break;
    }
  }
  std::vector<Kept> kept;
  for (size_t i = 0; i < keep; ++i) {
    if (masses[i] >= options.min_p * masses[0]) kept.push_back({order[i], masses[i]});
  }
  return kept;
}

// The first kept candidate whose cumulative mass exceeds u times the kept total.
int32_t reference_choice(const std::vector<float>& scores, const SamplingOptions& options,
                         double u) {
  if (options.temperature == 0.0f) return first_argmax(scores);
  const std::vector<Kept> kept = reference_kept(scores, options);
  double total = 0;
  for (const Kept& k : kept) total += k.mass;
  double mass = 0;
  for (const Kept& k : kept) {
    mass += k.mass;
    if (mass > u * total) return k.id;
  }
  return kept.back().id;
}

std::vector<float> normal_scores(size_t count, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> scores(count);
  for (float& score : scores) score = normal(rng);
  return scores;
}

TEST(SamplingMath, ExpAgreesWithStdExp) {
  for (double x = -28.0; x <= 0.0; x += 0.0137) {
    EXPECT_NEAR(sampling::exp_nonpositive(x), std::exp(x), 1e-14 * std::exp(x)) << x;
  }
  EXPECT_EQ(sampling::exp_nonpositive(0.0), 1.0);
  EXPECT_EQ(sampling::candidate_weight(2.5f, 2.5f, 0.7f), sampling::kTopWeight);
  EXPECT_EQ(sampling::candidate_weight(-30.0f, 0.0f, 1.0f), 0u);
  EXPECT_EQ(sampling::candidate_weight(std::nanf(""), 0.0f, 1.0f), 0u);
  // e^-1 in units of 2^-40, rounded down.
  EXPECT_EQ(sampling::candidate_weight(0.0f, 1.0f, 1.0f),
            static_cast<uint64_t>(std::exp(-1.0) * 0x1p40));
}

TEST(SamplingMath, KeysOrderAsTheScores) {
  const std::vector<float> ascending = {-INFINITY, -3.5f, -1e-30f, -0.0f,   0.0f,
                                        1e-30f,    2.0f,  3e38f,   INFINITY};
  for (size_t i = 0; i + 1 < ascending.size(); ++i) {
    EXPECT_LT(sampling::score_key(ascending[i]), sampling::score_key(ascending[i + 1])) << i;
    EXPECT_EQ(sampling::key_score(sampling::score_key(ascending[i])), ascending[i]);
  }
  EXPECT_EQ(sampling::score_key(std::nanf("")), 0u);
  EXPECT_LT(sampling::score_key(std::nanf("")), sampling::score_key(-INFINITY));
  // Equal scores: the lower index is the larger candidate key.
  EXPECT_GT(sampling::candidate_key(sampling::score_key(1.0f), 3),
            sampling::candidate_key(sampling::score_key(1.0f), 4));
  EXPECT_EQ(sampling::candidate_index(sampling::candidate_key(7, 12345)), 12345u);
}

TEST(Sampler, ChoiceMatchesTheSlowReference) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int compared = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const size_t vocab = 50 + rng() % 2000;
    std::vector<float> scores = normal_scores(vocab, trial, 1.0f + static_cast<float>(trial % 5));
    if (trial % 3 == 1) {  // many equal scores
      for (float& score : scores) score = std::round(score * 2.0f) / 2.0f + 0.0f;
    }
    if (trial % 4 == 2) {  // masked tokens
      for (size_t i = 0; i < vocab; i += 7) scores[i] = -INFINITY;
    }
    SamplingOptions options;
    options.temperature = std::array{0.0f, 0.3f, 0.7f, 1.0f, 1.5f}[trial % 5];
    options.top_k = std::array{0, 0, 1, 5, 40, 3000}[rng() % 6];
    options.top_p = std::array{1.0f, 1.0f, 0.9f, 0.5f, 0.99f, 0.1f}[rng() % 6];
    options.min_p = std::array{0.0f, 0.0f, 0.05f, 0.3f}[rng() % 4];
    const double u = trial % 17 == 0 ? 0.0 : uniform(rng);
    ASSERT_EQ(choose_token(scores, options, u), reference_choice(scores, options, u))
        << "trial " << trial << " vocab " << vocab << " temperature " << options.temperature
        << " top_k " << options.top_k << " top_p " << options.top_p << " min_p " << options.min_p
        << " u " << u;
    ++compared;
  }
  EXPECT_EQ(compared, 400);
}

TEST(Sampler, TopKOfOneIsTheArgmax) {
  SamplingOptions options = with_temperature(1.5f);
  options.top_k = 1;
  const auto scores = normal_scores(3000, 2, 2.0f);
  for (double u : {0.0, 0.3, 0.999999})
    EXPECT_EQ(choose_token(scores, options, u), first_argmax(scores));
}

TEST(Sampler, MinPOfOneIsTheArgmax) {
  SamplingOptions options = with_temperature(1.0f);
  options.min_p = 1.0f;
  const auto scores = normal_scores(3000, 3, 2.0f);
  for (double u : {0.0, 0.5, 0.999999})
    EXPECT_EQ(choose_token(scores, options, u), first_argmax(scores));
}

TEST(Sampler, ATinyTemperatureIsTheArgmax) {
  // Distinct scores at least 0.01 apart: e^(-0.01 / 1e-5) weighs nothing next to the best.
  std::vector<float> scores(500);
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = 0.01f * static_cast<float>((i * 37) % 500);
  const SamplingOptions options = with_temperature(1e-5f);
  for (double u : {0.0, 0.5, 0.999999})
    EXPECT_EQ(choose_token(scores, options, u), first_argmax(scores));
}

TEST(Sampler, EqualScoresGoLowerIndexFirst) {
  SamplingOptions options = with_temperature(1.0f);
  options.top_k = 2;
  const std::vector<float> equal(10, 1.0f);
  EXPECT_EQ(choose_token(equal, options, 0.0), 0);
  EXPECT_EQ(choose_token(equal, options, 0.49), 0);
  EXPECT_EQ(choose_token(equal, options, 0.51), 1);
  EXPECT_EQ(choose_token(equal, options, 0.99), 1);
  // Top-3 of {1, 2, 2, 2, 2}: the three lowest indices of the 2s.
  options.top_k = 3;
  const std::vector<float> scores = {1, 2, 2, 2, 2};
  EXPECT_EQ(choose_token(scores, options, 0.0), 1);
  EXPECT_EQ(choose_token(scores, options, 0.5), 2);
  EXPECT_EQ(choose_token(scores, options, 0.9), 3);
}

TEST(Sampler, TopPKeepsTheExpectedPrefix) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 at ids 2, 0, 3, 1.
  const std::vector<float> scores = {std::log(0.3f), std::log(0.05f), std::log(0.5f),
                                     std::log(0.15f)};
  struct Case {
    float top_p;
    std::vector<int32_t> kept;  // in order
    std::vector<double> mass;   // their probabilities
  };
  for (const Case& c : {Case{0.4f, {2}, {0.5}}, Case{0.75f, {2, 0}, {0.5, 0.3}},
                        Case{0.85f, {2, 0, 3}, {0.5, 0.3, 0.15}},
                        Case{1.0f, {2, 0, 3, 1}, {0.5, 0.3, 0.15, 0.05}}}) {
    SamplingOptions options = with_temperature(1.0f);
    options.top_p = c.top_p;
    const double total = std::accumulate(c.mass.begin(), c.mass.end(), 0.0);
    double below = 0;
    for (size_t i = 0; i < c.kept.size(); ++i) {
      const double above = below + c.mass[i] / total;
      // Draws just inside each kept candidate's stretch of [0, 1) pick it.
      EXPECT_EQ(choose_token(scores, options, below + 1e-6), c.kept[i]) << c.top_p;
      EXPECT_EQ(choose_token(scores, options, above - 1e-6), c.kept[i]) << c.top_p;
      below = above;
    }
  }
}

TEST(Sampler, MinPDropsTokensBelowItsShareOfTheBest) {
  // Probabilities relative to the best: 1, 0.5, 0.2, 0.05.
  const std::vector<float> scores = {0.0f, std::log(0.5f), std::log(0.2f), std::log(0.05f)};
  SamplingOptions options = with_temperature(1.0f);
  options.min_p = 0.3f;  // keeps ids 0 and 1: 1 / 1.5 and 0.5 / 1.5
  EXPECT_EQ(choose_token(scores, options, 0.66), 0);
  EXPECT_EQ(choose_token(scores, options, 0.67), 1);
  EXPECT_EQ(choose_token(scores, options, 0.999), 1);
}

TEST(Sampler, FrequenciesFollowTheFilteredSoftmax) {
  const std::vector<float> scores = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 1.7f};
  std::vector<SamplingOptions> cases;
  cases.push_back(with_temperature(1.0f));
  cases.push_back(with_temperature(0.6f));
  cases.back().top_k = 3;
  cases.push_back(with_temperature(1.3f));
  cases.back().top_p = 0.8f;
  cases.push_back(with_temperature(1.0f));
  cases.back().min_p = 0.15f;
  cases.push_back(with_temperature(2.0f));
  cases.back().top_k = 5;
  cases.back().top_p = 0.9f;
  cases.back().min_p = 0.2f;
  constexpr int kDraws = 40000;
  for (size_t c = 0; c < cases.size(); ++c) {
    SamplingOptions options = cases[c];
    options.seed = 100 + c;
    const std::vector<Kept> kept = reference_kept(scores, options);
    double total = 0;
    for (const Kept& k : kept) total += k.mass;
    std::vector<double> expected(scores.size(), 0.0);
    for (const Kept& k : kept) expected[k.id] = k.mass / total;

    Sampler sampler(options);
    std::vector<int> counts(scores.size(), 0);
    for (int draw = 0; draw < kDraws; ++draw) ++counts[sampler.sample(scores, {})];
    for (size_t id = 0; id < scores.size(); ++id) {
      const double mean = kDraws * expected[id];
      const double sigma = std::sqrt(kDraws * expected[id] * (1.0 - expected[id]));
      if (expected[id] == 0.0) {
        EXPECT_EQ(counts[id], 0) << "case " << c << " id " << id << " is filtered out";
      } else {
        EXPECT_NEAR(counts[id], mean, 5.0 * sigma + 1.0) << "case " << c << " id " << id;
      }
    }
  }
}

TEST(Sampler, PenaltiesFollowTheirFormula) {
  SamplingOptions options;
  options.repetition_penalty = 1.25f;
  options.presence_penalty = 0.5f;
  options.frequency_penalty = 0.25f;
  options.penalty_window = 4;
  std::vector<float> scores = {2.0f, -1.0f, 3.0f, 0.5f, 1.0f};
  // The window is the last 4 tokens: 1, 1, 3, 1 (the 2 and the 7 come before it).
  const std::vector<int32_t> history = {2, 7, 1, 1, 3, 1};
  apply_penalties(scores, options, history);
  EXPECT_FLOAT_EQ(scores[0], 2.0f);
  EXPECT_FLOAT_EQ(scores[1], -1.0f * 1.25f - (0.5f + 0.25f * 3));
  EXPECT_FLOAT_EQ(scores[2], 3.0f);
  EXPECT_FLOAT_EQ(scores[3], 0.5f / 1.25f - (0.5f + 0.25f * 1));
  EXPECT_FLOAT_EQ(scores[4], 1.0f);

  const auto entries = penalty_entries(options, std::vector<int32_t>{4, -1, 9, 4}, 5);
  ASSERT_EQ(entries.size(), 1u);  // -1 and 9 lie outside the vocabulary
  EXPECT_EQ(entries[0].id, 4);
  EXPECT_FLOAT_EQ(entries[0].amount, 0.5f + 0.25f * 2);
  EXPECT_TRUE(penalty_entries(SamplingOptions{}, history, 5).empty());  // no penalty on
}

TEST(Sampler, PenaltiesChangeTheGreedyPick) {
  const std::vector<float> scores = {2.0f, 1.9f, -1.0f};
  auto greedy_pick = [&](SamplingOptions options, std::vector<int32_t> history) {
    Sampler sampler(options);
    return sampler.sample(scores, history);
  };
  SamplingOptions none;
  EXPECT_EQ(greedy_pick(none, {0}), 0);
  SamplingOptions repetition;
  repetition.repetition_penalty = 1.2f;  // 2 / 1.2 = 1.67 < 1.9
  EXPECT_EQ(greedy_pick(repetition, {0}), 1);
  SamplingOptions presence;
  presence.presence_penalty = 0.2f;  // 1.8 < 1.9
  EXPECT_EQ(greedy_pick(presence, {0}), 1);
  SamplingOptions frequency;
  frequency.frequency_penalty = 0.06f;
  EXPECT_EQ(greedy_pick(frequency, {0}), 0);     // 1.94 > 1.9
  EXPECT_EQ(greedy_pick(frequency, {0, 0}), 1);  // 1.88 < 1.9
  frequency.penalty_window = 1;
  EXPECT_EQ(greedy_pick(frequency, {0, 0}), 0);  // only the last token counts
  // Negative scores are multiplied: -1 * 1.2 < -1.1.
  const std::vector<float> negative = {-1.0f, -1.1f};
  Sampler sampler(repetition);
  EXPECT_EQ(sampler.sample(negative, std::vector<int32_t>{0}), 1);
}

TEST(Sampler, TheSameSeedGivesTheSameTokens) {
  SamplingOptions options = with_temperature(0.9f);
  options.top_p = 0.95f;
  options.repetition_penalty = 1.1f;
  options.seed = 42;
  const auto scores = normal_scores(1000, 5, 2.0f);
  auto run = [&](uint64_t seed) {
    options.seed = seed;
    Sampler sampler(options);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 200; ++i) tokens.push_back(sampler.sample(scores, tokens));
    return tokens;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, UniformDrawsAreSeededAndInTheUnitInterval) {
  SamplingOptions options;
  options.seed = 9;
  Sampler a(options), b(options);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = a.next_uniform();
    EXPECT_EQ(u, b.next_uniform());
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

TEST(Sampler, AnInfiniteScoreIsChosen) {
  const std::vector<float> scores = {0.0f, INFINITY, 1.0f, INFINITY, std::nanf("")};
  for (double u : {0.0, 0.7}) EXPECT_EQ(choose_token(scores, with_temperature(1.0f), u), 1);
  // NaN scores rank below every number and weigh nothing.
  const std::vector<float> with_nan = {std::nanf(""), -5.0f, std::nanf("")};
  EXPECT_EQ(choose_token(with_nan, with_temperature(1.0f), 0.9), 1);
}

void expect_error(const std::function<void()>& call, const std::string& message) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one containing: " << message;
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(message), std::string::npos) << error.what();
  }
}

TEST(Sampler, BadOptionsAreErrors) {
  auto options_with = [](auto change) {
    SamplingOptions options = with_temperature(1.0f);
    change(options);
    return options;
  };
  const std::vector<std::pair<SamplingOptions, std::string>> cases = {
      {options_with([](auto& o) { o.temperature = -1.0f; }), "temperature must not be negative"},
      {options_with([](auto& o) { o.top_k = -2; }), "top-k must not be negative"},
      {options_with([](auto& o) { o.top_p = 0.0f; }), "top-p must be in (0, 1]"},
      {options_with([](auto& o) { o.top_p = 1.5f; }), "top-p must be in (0, 1]"},
      {options_with([](auto& o) { o.min_p = -0.1f; }), "min-p must be in [0, 1]"},
      {options_with([](auto& o) { o.min_p = 2.0f; }), "min-p must be in [0, 1]"},
      {options_with([](auto& o) { o.repetition_penalty = 0.0f; }),
       "repetition penalty must be positive"},
  };
  const std::vector<float> scores = {1.0f, 2.0f};
  for (const auto& [options, message] : cases) {
    expect_error([&] { Sampler sampler(options); }, message);
    expect_error([&] { choose_token(scores, options, 0.5); }, message);
  }
  expect_error([&] { choose_token(scores, with_temperature(1.0f), 1.0); }, "outside [0, 1)");
  expect_error([&] { choose_token(scores, with_temperature(1.0f), -0.25); }, "outside [0, 1)");
  expect_error([&] { choose_token({}, with_temperature(1.0f), 0.5); }, "no scores");
}

}  // namespace
}  // namespace flow2
