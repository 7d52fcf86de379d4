// Backend::sample_rows (the CUDA backend samples on the device) against the CPU's choice
// (apply_penalties, then choose_token) for the same uniform draws: random rows of 1000 and
// 128256 logits, rows full of equal scores, infinities and NaN, every filter alone and together,
// penalties, temperature 0; and generation, whose sampled tokens must be the CPU's choice from
// the backend's logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/error.h"
#include "flow2/generate.h"
#include "flow2/model.h"
#include "flow2/sampler.h"
#include "test_support.h"

namespace flow2 {
namespace {

class SampleRows : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason(GetParam()); !reason.empty()) GTEST_SKIP() << reason;
    backend_ = make_backend(GetParam());
  }

  // The backend's picks for rows [rows, vocab] against the CPU's.
  void expect_cpu_choice(const std::vector<float>& values, int64_t vocab,
                         const SamplingOptions& options, std::span<const int32_t> history,
                         const std::vector<double>& uniforms, const std::string& what) {
    const auto rows = static_cast<int64_t>(uniforms.size());
    ASSERT_EQ(values.size(), static_cast<size_t>(rows * vocab));
    std::vector<int32_t> expected;
    for (int64_t row = 0; row < rows; ++row) {
      std::vector<float> scores(values.begin() + row * vocab, values.begin() + (row + 1) * vocab);
      apply_penalties(scores, options, history);
      expected.push_back(choose_token(scores, options, uniforms[static_cast<size_t>(row)]));
    }
    const Tensor logits = backend_->from_host(values, {rows, vocab});
    EXPECT_EQ(backend_->sample_rows(logits, options, history, uniforms), expected) << what;
  }

  std::unique_ptr<Backend> backend_;
};

SamplingOptions make_options(float temperature, int top_k, float top_p, float min_p) {
  SamplingOptions options;
  options.temperature = temperature;
  options.top_k = top_k;
  options.top_p = top_p;
  options.min_p = min_p;
  return options;
}

std::vector<SamplingOptions> option_cases() {
  std::vector<SamplingOptions> cases = {
      make_options(1.0f, 0, 1.0f, 0.0f),     // plain temperature
      make_options(0.8f, 40, 1.0f, 0.0f),    // top-k only
      make_options(1.0f, 0, 0.9f, 0.0f),     // top-p only
      make_options(0.7f, 0, 1.0f, 0.05f),    // min-p only
      make_options(2.0f, 0, 0.5f, 0.0f),     // hot, top-p
      make_options(1.0f, 1, 1.0f, 0.0f),     // top-k 1
      make_options(1.2f, 500, 0.95f, 0.01f)  // all filters
  };
  SamplingOptions penalized = make_options(1.1f, 200, 0.97f, 0.0f);
  penalized.repetition_penalty = 1.3f;
  penalized.presence_penalty = 0.5f;
  penalized.frequency_penalty = 0.2f;
  penalized.penalty_window = 80;
  cases.push_back(penalized);
  SamplingOptions greedy_penalized = make_options(0.0f, 0, 1.0f, 0.0f);
  greedy_penalized.repetition_penalty = 1.5f;
  greedy_penalized.presence_penalty = 1.0f;
  cases.push_back(greedy_penalized);
  return cases;
}

std::string describe(const SamplingOptions& o, int64_t vocab) {
  return "vocab " + std::to_string(vocab) + " temperature " + std::to_string(o.temperature) +
         " top_k " + std::to_string(o.top_k) + " top_p " + std::to_string(o.top_p) + " min_p " +
         std::to_string(o.min_p) + " repetition " + std::to_string(o.repetition_penalty);
}

// Rows of different character: spread logits, logits on a coarse grid (many equal scores),
// one peaked row with masked (-inf) tokens.
std::vector<float> logit_rows(int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> values(static_cast<size_t>(3 * vocab));
  for (int64_t j = 0; j < vocab; ++j) {
    values[j] = normal(rng);
    values[vocab + j] = std::round(normal(rng) * 2.0f) / 2.0f + 0.0f;  // +0.0f: no -0
    values[2 * vocab + j] = j % 11 == 3 ? -INFINITY : normal(rng) * 0.5f;
  }
  values[2 * vocab + vocab / 3] = 12.0f;
  return values;
}

TEST_P(SampleRows, EqualsTheCpuChoice) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t vocab : {1000, 128256}) {
    const std::vector<float> values = logit_rows(vocab, static_cast<uint64_t>(vocab));
    // Recent tokens with repeats, and ids outside the vocabulary (ignored).
    std::vector<int32_t> history = {-1, static_cast<int32_t>(vocab) + 5};
    for (int i = 0; i < 100; ++i) history.push_back(static_cast<int32_t>(rng() % 50) * 7);
    for (const SamplingOptions& options : option_cases()) {
      const int trials = vocab > 1000 ? 2 : 6;
      for (int trial = 0; trial < trials; ++trial) {
        std::vector<double> uniforms = {uniform(rng), uniform(rng), uniform(rng)};
        if (trial == 0) uniforms = {0.0, 0x1.fffffffffffffp-1, 0.5};  // the ends of [0, 1)
        expect_cpu_choice(values, vocab, options, history, uniforms,
                          describe(options, vocab) + " trial " + std::to_string(trial));
      }
    }
  }
}

TEST_P(SampleRows, EqualScoresAtEveryBoundary) {
  // A row of one value (every candidate tied), and rows of three values: top-k, top-p and the
  // draw all end inside groups of equal scores, where lower indices come first.
  std::mt19937_64 rng(8);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t vocab : {1000, 128256}) {
    std::vector<float> values(static_cast<size_t>(3 * vocab), 0.5f);
    for (int64_t j = 0; j < vocab; ++j) {
      values[vocab + j] = static_cast<float>(rng() % 3);
      values[2 * vocab + j] = j % 5 == 0 ? 1.0f : -INFINITY;
    }
    for (const SamplingOptions& options :
         {make_options(1.0f, 10, 1.0f, 0.0f), make_options(1.0f, 0, 0.5f, 0.0f),
          make_options(1.0f, 0, 1.0f, 0.0f), make_options(0.5f, 1000, 0.3f, 0.0f),
          make_options(1.0f, 0, 1.0f, 0.5f), make_options(1.0f, 999, 0.999f, 0.0f)}) {
      for (int trial = 0; trial < 3; ++trial) {
        const std::vector<double> uniforms = {uniform(rng), uniform(rng), uniform(rng)};
        expect_cpu_choice(values, vocab, options, {}, uniforms,
                          describe(options, vocab) + " trial " + std::to_string(trial));
      }
    }
    // All tied, top-k 10: draw u picks index floor(10 u).
    const Tensor tied = backend_->from_host(std::vector<float>(vocab, 0.5f), {1, vocab});
    const std::vector<double> u = {0.95};
    EXPECT_EQ(backend_->sample_rows(tied, make_options(1.0f, 10, 1.0f, 0.0f), {}, u),
              std::vector<int32_t>{9});
  }
}

TEST_P(SampleRows, InfiniteAndNaNScores) {
  const int64_t vocab = 2000;
  std::vector<float> values = testing::random_values(static_cast<size_t>(2 * vocab), 3, 2.0f);
  values[17] = INFINITY;  // row 0: two infinite scores, the first one wins
  values[1500] = INFINITY;
  for (int64_t j = 0; j < vocab; j += 3) values[vocab + j] = std::nanf("");  // row 1: NaNs
  for (const SamplingOptions& options :
       {make_options(1.0f, 0, 1.0f, 0.0f), make_options(0.9f, 20, 0.9f, 0.1f)}) {
    expect_cpu_choice(values, vocab, options, {}, {0.3, 0.8}, describe(options, vocab));
  }
  const Tensor logits = backend_->from_host(values, {2, vocab});
  const std::vector<double> uniforms = {0.6, 0.6};
  EXPECT_EQ(backend_->sample_rows(logits, make_options(1.0f, 0, 1.0f, 0.0f), {}, uniforms)[0], 17);
}

TEST_P(SampleRows, BadArgumentsAreErrors) {
  const Tensor logits = backend_->from_host(std::vector<float>(20, 1.0f), {2, 10});
  const SamplingOptions options = make_options(1.0f, 0, 1.0f, 0.0f);
  const std::vector<double> one = {0.5}, two = {0.5, 0.5}, outside = {0.5, 1.0};
  EXPECT_THROW(backend_->sample_rows(logits, options, {}, one), Error);
  EXPECT_THROW(backend_->sample_rows(logits, options, {}, outside), Error);
  EXPECT_THROW(backend_->sample_rows(logits, make_options(1.0f, 0, 0.0f, 0.0f), {}, two), Error);
  EXPECT_THROW(backend_->sample_rows(logits, make_options(-1.0f, 0, 1.0f, 0.0f), {}, two), Error);
  EXPECT_EQ(backend_->sample_rows(logits, options, {}, two).size(), 2u);
}

// generate() samples through the backend: its tokens are the CPU's choices, with the same
// uniform draws, from the logits the backend computes.
TEST_P(SampleRows, GenerationSamplesLikeTheCpuChoice) {
  auto model = Model::load(open_checkpoint(testing::model_path("tiny-llama")), *backend_);
  const std::vector<int32_t> prompt = {1, 5, 9, 13, 2, 7};
  GenerationOptions options;
  options.max_new_tokens = 24;
  options.sampling = make_options(0.9f, 50, 0.95f, 0.02f);
  options.sampling.repetition_penalty = 1.2f;
  options.sampling.seed = 77;
  const GenerationResult result = generate(*model, prompt, options);
  ASSERT_EQ(result.ids.size(), 24u);
  EXPECT_EQ(generate(*model, prompt, options).ids, result.ids);

  Sampler sampler(options.sampling);
  KVCache cache = model->make_cache(1, static_cast<int64_t>(prompt.size()) + 24);
  std::vector<int32_t> history = prompt;
  std::vector<int32_t> expected;
  Tensor logits = model->forward(prompt, 1, cache, LogitRows::Last);
  for (int step = 0; step < 24; ++step) {
    std::vector<float> scores = backend_->to_host(logits);
    apply_penalties(scores, options.sampling, history);
    const int32_t next = choose_token(scores, options.sampling, sampler.next_uniform());
    expected.push_back(next);
    history.push_back(next);
    logits = model->forward(std::span<const int32_t>(&next, 1), 1, cache, LogitRows::Last);
  }
  EXPECT_EQ(result.ids, expected);
}

INSTANTIATE_TEST_SUITE_P(Backends, SampleRows, ::testing::ValuesIn(testing::inference_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flow2
