// Decoding a step ahead of the host (Backend::choose_into, Model::forward of device token ids):
// where the backend keeps chosen tokens on its device (CUDA), generate and decode_greedy queue
// the step that feeds token N before N comes back. Their tokens must be those of a loop that
// reads every step's logits back and chooses on the host with the same draws, stops must land
// on the same token, and a session must reuse its cache as if nothing ran ahead. On the CPU
// (no device ids) the same tests hold the synchronous path.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/error.h"
#include "flow2/generate.h"
#include "flow2/model.h"
#include "flow2/sampler.h"
#include "test_support.h"

namespace flow2 {
namespace {

class PipelinedDecoding : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason(GetParam()); !reason.empty()) GTEST_SKIP() << reason;
    backend_ = make_backend(GetParam());
  }

  std::unique_ptr<Model> load(const std::string& fixture) {
    return Model::load(open_checkpoint(testing::model_path(fixture)), *backend_);
  }

  // `count` tokens after `prompt`, each chosen on the host from the logits read back (with the
  // sampler's draws, no penalties) and fed back one step at a time.
  std::vector<int32_t> step_by_step(Model& model, const std::vector<int32_t>& prompt,
                                    const SamplingOptions& options, int64_t count) {
    Sampler sampler(options);
    KVCache cache = model.make_cache(1, static_cast<int64_t>(prompt.size()) + count);
    std::vector<int32_t> chosen;
    Tensor logits = model.forward(prompt, 1, cache, LogitRows::Last);
    for (int64_t i = 0; i < count; ++i) {
      const double u = options.temperature > 0.0f ? sampler.next_uniform() : 0.0;
      chosen.push_back(choose_token(backend_->to_host(logits), options, u));
      if (i + 1 < count) {
        logits =
            model.forward(std::span<const int32_t>(&chosen.back(), 1), 1, cache, LogitRows::Last);
      }
    }
    return chosen;
  }

  std::unique_ptr<Backend> backend_;
};

TEST_P(PipelinedDecoding, DecodeGreedyFeedsEachTokenBack) {
  for (const char* fixture : {"tiny-llama", "tiny-gpt2", "tiny-mistral-window"}) {
    auto model = load(fixture);
    const int64_t steps = 20;
    KVCache cache = model->make_cache(1, steps);
    const std::vector<int32_t> tokens = decode_greedy(*model, cache, 3, steps);
    EXPECT_EQ(tokens, step_by_step(*model, {3}, SamplingOptions{}, steps)) << fixture;
    EXPECT_EQ(cache.length(0), steps) << fixture;  // the first token and steps - 1 chosen ones
  }
}

TEST_P(PipelinedDecoding, GenerationEqualsAStepByStepLoop) {
  auto model = load("tiny-llama");
  const std::vector<int32_t> prompt = {1, 5, 9, 13, 2, 7};
  SamplingOptions sampled;
  sampled.temperature = 0.9f;
  sampled.top_k = 50;
  sampled.top_p = 0.95f;
  sampled.seed = 77;
  for (const SamplingOptions& sampling : {SamplingOptions{}, sampled}) {
    for (int64_t count : {1, 2, 24}) {
      GenerationOptions options;
      options.max_new_tokens = count;
      options.sampling = sampling;
      const GenerationResult result = generate(*model, prompt, options);
      EXPECT_EQ(result.stop_reason, "length");
      EXPECT_EQ(result.ids, step_by_step(*model, prompt, sampling, count))
          << "temperature " << sampling.temperature << ", " << count << " tokens";
    }
  }
}

// A stop token, or the callback, ends generation on the same token as reading each token back
// would; the step queued for that token leaves its keys in the session's cache, and the next
// call that extends the conversation gives what a fresh session gives.
TEST_P(PipelinedDecoding, StopsOnTheSameTokenAndTheSessionGoesOn) {
  auto model = load("tiny-llama");
  const std::vector<int32_t> prompt = {4, 8, 15, 16, 23, 42};
  const std::vector<int32_t> reference = step_by_step(*model, prompt, SamplingOptions{}, 16);
  // A token that first appears at index 3 or later.
  size_t stop_at = 3;
  while (stop_at < reference.size() &&
         std::find(reference.begin(), reference.begin() + static_cast<std::ptrdiff_t>(stop_at),
                   reference[stop_at]) !=
             reference.begin() + static_cast<std::ptrdiff_t>(stop_at)) {
    ++stop_at;
  }
  ASSERT_LT(stop_at, reference.size()) << "every greedy token repeats an earlier one";
  const std::vector<int32_t> expected(reference.begin(),
                                      reference.begin() + static_cast<std::ptrdiff_t>(stop_at) + 1);

  GenerationSession session(*model, 64);
  GenerationOptions options;
  options.max_new_tokens = 16;
  options.stop_ids = {reference[stop_at]};
  const GenerationResult stopped = session.generate(prompt, options);
  EXPECT_EQ(stopped.stop_reason, "stop_id");
  EXPECT_EQ(stopped.ids, expected);

  std::vector<int32_t> conversation = prompt;
  conversation.insert(conversation.end(), stopped.ids.begin(), stopped.ids.end());
  conversation.insert(conversation.end(), {7, 11});
  options.stop_ids.clear();
  options.max_new_tokens = 4;
  GenerationSession fresh(*model, 64);
  EXPECT_EQ(session.generate(conversation, options).ids, fresh.generate(conversation, options).ids);

  int seen = 0;
  const GenerationResult by_callback =
      generate(*model, prompt, options, [&](int32_t) { return ++seen < 3; });
  EXPECT_EQ(by_callback.stop_reason, "stopped");
  EXPECT_EQ(by_callback.ids, std::vector<int32_t>(reference.begin(), reference.begin() + 3));
}

// Only a backend that keeps tokens on a device makes token-id tensors; the others refuse the
// calls that take them, by name.
TEST_P(PipelinedDecoding, TokenIdsOnTheDeviceOrClearErrors) {
  const Tensor ids = backend_->make_token_ids(2);
  if (GetParam() == "cpu") {
    EXPECT_FALSE(ids.defined());
    Tensor none;
    const Tensor logits = backend_->from_host(std::vector<float>(8, 0.0f), {2, 4});
    const std::vector<double> uniforms = {0.0, 0.0};
    try {
      backend_->choose_into(none, logits, SamplingOptions{}, uniforms);
      FAIL() << "choose_into on the CPU";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("cpu backend"), std::string::npos) << error.what();
    }
    return;
  }
  ASSERT_TRUE(ids.defined());
  EXPECT_EQ(ids.dtype(), DType::I32);
  EXPECT_EQ(ids.numel(), 2);

  // Rows whose largest logit is at 3 and at 1; each choice's ticket reads its own ids until its
  // host memory is reused.
  Tensor chosen = ids;
  const Tensor logits = backend_->from_host(
      std::vector<float>{0.0f, 1.0f, 2.0f, 5.0f, 0.0f, 7.0f, 2.0f, 5.0f}, {2, 4});
  const std::vector<double> uniforms = {0.0, 0.0};
  std::vector<int64_t> tickets;
  for (int i = 0; i < 8; ++i) {
    tickets.push_back(backend_->choose_into(chosen, logits, SamplingOptions{}, uniforms));
  }
  EXPECT_EQ(backend_->chosen_ids(tickets.back()), (std::vector<int32_t>{3, 1}));
  EXPECT_THROW(backend_->chosen_ids(tickets.front()), Error);     // overwritten since
  EXPECT_THROW(backend_->chosen_ids(tickets.back() + 1), Error);  // no such choice

  SamplingOptions penalized;
  penalized.repetition_penalty = 1.3f;
  EXPECT_THROW(backend_->choose_into(chosen, logits, penalized, uniforms), Error);
  Tensor floats = backend_->from_host(std::vector<float>{1.0f, 2.0f}, {2});
  EXPECT_THROW(backend_->choose_into(floats, logits, SamplingOptions{}, uniforms), Error);

  auto model = load("tiny-llama");
  KVCache cache = model->make_cache(2, 4);
  EXPECT_THROW(model->forward(floats, 2, cache, LogitRows::Last), Error);
}

// choose_into's sampled choice is sample_rows's for the same draws.
TEST(PipelinedDecodingOnCuda, ChooseIntoSamplesAsSampleRows) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = make_backend("cuda");
  const int64_t rows = 3, vocab = 1000;
  const std::vector<float> values =
      testing::random_values(static_cast<size_t>(rows * vocab), 5, 4.0f);
  const Tensor logits = backend->from_host(values, {rows, vocab});
  SamplingOptions options;
  options.temperature = 0.8f;
  options.top_p = 0.9f;
  const std::vector<double> uniforms = {0.1, 0.5, 0.93};
  Tensor ids = backend->make_token_ids(rows);
  const int64_t ticket = backend->choose_into(ids, logits, options, uniforms);
  EXPECT_EQ(backend->chosen_ids(ticket), backend->sample_rows(logits, options, {}, uniforms));
}

INSTANTIATE_TEST_SUITE_P(Backends, PipelinedDecoding,
                         ::testing::ValuesIn(testing::inference_backends()));

}  // namespace
}  // namespace flow2
