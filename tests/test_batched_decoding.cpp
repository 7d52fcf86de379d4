// Batched decoding of sequences at different lengths: prompts of different lengths join one
// batched cache (Model::forward_sequence), then every step decodes all of them together, each at
// its own position. Each row's logits must equal those of the same sequence decoded alone.
#include <gtest/gtest.h>

#include "backend_list.h"
#include "flow2/error.h"
#include "flow2/model.h"
#include "test_support.h"

namespace flow2 {
namespace {

struct Case {
  std::string fixture;
  double tolerance;  // between the batched and the lone run on one backend
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << c.fixture;
}

class BatchedDecoding : public ::testing::TestWithParam<std::tuple<Case, std::string>> {};

std::vector<int32_t> prompt_of(int64_t sequence, int64_t length) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < length; ++i)
    ids.push_back(static_cast<int32_t>(5 + 13 * sequence + 7 * i) % 300);
  return ids;
}

int32_t step_token(int64_t sequence, int64_t step) {
  return static_cast<int32_t>(11 + 17 * step + 3 * sequence) % 300;
}

TEST_P(BatchedDecoding, EachSequenceDecodesAsIfAlone) {
  const auto& [c, backend_name] = GetParam();
  if (auto reason = testing::skip_reason(backend_name); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = make_backend(backend_name);
  auto model = Model::load(open_checkpoint(testing::model_path(c.fixture)), *backend);
  const int64_t vocab = model->config().vocab_size;
  // Prompts of 20, 3 and 9 tokens (20 takes the tensor-core prompt path on CUDA for 16-bit
  // models), then 6 steps of all three together.
  const std::vector<int64_t> lengths = {20, 3, 9};
  const int64_t batch = static_cast<int64_t>(lengths.size()), steps = 6, capacity = 40;

  std::vector<std::vector<std::vector<float>>> alone(batch);  // [sequence][step] logits
  for (int64_t b = 0; b < batch; ++b) {
    KVCache cache = model->make_cache(1, capacity);
    model->forward(prompt_of(b, lengths[b]), 1, cache, LogitRows::Last);
    for (int64_t s = 0; s < steps; ++s) {
      const int32_t token = step_token(b, s);
      alone[b].push_back(backend->to_host(
          model->forward(std::span<const int32_t>(&token, 1), 1, cache, LogitRows::Last)));
    }
  }

  KVCache cache = model->make_cache(batch, capacity);
  for (int64_t b = 0; b < batch; ++b) {
    model->forward_sequence(prompt_of(b, lengths[b]), b, cache, LogitRows::Last);
    EXPECT_EQ(cache.length(b), lengths[b]);
  }
  EXPECT_FALSE(cache.uniform());
  EXPECT_THROW(cache.length(), Error);
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<int32_t> tokens;
    for (int64_t b = 0; b < batch; ++b) tokens.push_back(step_token(b, s));
    auto logits = backend->to_host(model->forward(tokens, batch, cache, LogitRows::Last));
    ASSERT_EQ(logits.size(), static_cast<size_t>(batch * vocab));
    for (int64_t b = 0; b < batch; ++b) {
      auto row = std::span<const float>(logits).subspan(b * vocab, vocab);
      EXPECT_LE(testing::max_abs_difference(row, alone[b][s]), c.tolerance)
          << "sequence " << b << " step " << s;
      EXPECT_EQ(cache.length(b), lengths[b] + s + 1);
    }
  }
  // A sequence that ends can start over while the others go on.
  cache.truncate_sequence(1, 0);
  EXPECT_EQ(cache.length(1), 0);
  EXPECT_EQ(cache.length(0), lengths[0] + steps);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchedDecoding,
                         ::testing::Combine(::testing::Values(Case{"tiny-llama", 1e-4},
                                                              Case{"tiny-gpt2", 1e-4},
                                                              Case{"tiny-mistral-window", 1e-4},
                                                              Case{"tiny-llama-bf16", 1e-3}),
                                            ::testing::ValuesIn(testing::inference_backends())),
                         [](const auto& info) {
                           std::string name =
                               std::get<0>(info.param).fixture + "_" + std::get<1>(info.param);
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace flow2
