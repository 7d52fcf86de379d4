// Decoding steps replayed as CUDA graphs (cuda_step_graph.h) compute what the same ops compute
// one launch at a time, capture once per step shape and recover from a step that fails.
// Built with the toolkit; skips without a GPU.
#include <gtest/gtest.h>

#include <cstdlib>

#include "backend/cuda/cuda_backend.h"
#include "backend_list.h"
#include "flow2/error.h"
#include "flow2/generate.h"
#include "flow2/model.h"
#include "flow2/tensor.h"
#include "test_support.h"

namespace flow2 {
namespace {

std::unique_ptr<Backend> cuda_backend(bool graphs) {
  ::setenv("FLOW2_CUDA_GRAPHS", graphs ? "1" : "0", 1);
  auto backend = make_backend("cuda");
  ::unsetenv("FLOW2_CUDA_GRAPHS");
  return backend;
}

const cuda::StepGraphs& graphs_of(Backend& backend) {
  return dynamic_cast<CudaBackend&>(backend).context().graphs();
}

// Logits of a prompt of `batch` rows of 6 tokens, then of `steps` single tokens per row.
std::vector<std::vector<float>> decode(Backend& backend, const std::string& fixture, int64_t batch,
                                       int64_t steps) {
  auto model = Model::load(open_checkpoint(testing::model_path(fixture)), backend);
  KVCache cache = model->make_cache(batch, 6 + steps);
  std::vector<int32_t> prompt;
  for (int64_t i = 0; i < 6 * batch; ++i) prompt.push_back(static_cast<int32_t>(3 + 5 * i % 97));
  std::vector<std::vector<float>> logits;
  logits.push_back(backend.to_host(model->forward(prompt, batch, cache, LogitRows::Last)));
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<int32_t> next;
    for (int64_t b = 0; b < batch; ++b) next.push_back(static_cast<int32_t>(7 + 11 * step + b));
    logits.push_back(backend.to_host(model->forward(next, batch, cache, LogitRows::Last)));
  }
  return logits;
}

class CudaGraphs : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  }
};

TEST_P(CudaGraphs, ReplayedStepsEqualOpByOpSteps) {
  for (int64_t batch : {1, 3}) {
    const int64_t steps = 12;
    auto graphed = cuda_backend(true);
    auto plain = cuda_backend(false);
    auto with_graphs = decode(*graphed, GetParam(), batch, steps);
    auto without = decode(*plain, GetParam(), batch, steps);
    ASSERT_EQ(with_graphs.size(), without.size());
    for (size_t i = 0; i < with_graphs.size(); ++i) {
      // The split of the keys differs (a step's follows the cache capacity): sums regroup.
      EXPECT_LE(testing::max_abs_difference(with_graphs[i], without[i]), 1e-4)
          << "batch " << batch << " step " << i;
    }
    // The first step sizes the arena and runs op by op; the second is captured; the rest replay.
    EXPECT_EQ(graphs_of(*graphed).captures(), 1) << "batch " << batch;
    EXPECT_EQ(graphs_of(*graphed).replays(), steps - 1) << "batch " << batch;
    EXPECT_EQ(graphs_of(*plain).captures(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaGraphs,
                         ::testing::Values("tiny-llama", "tiny-gpt2", "tiny-mistral-window",
                                           "tiny-llama-bf16"));

TEST(CudaGraphSteps, AFailedStepIsDroppedAndTheBackendGoesOn) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = cuda_backend(true);
  Tensor a = backend->from_host(std::vector<float>{1, 2, 3, 4}, {2, 2});
  Tensor wrong = backend->from_host(std::vector<float>{1, 2, 3}, {3, 1});
  backend->begin_step();
  Tensor sum = backend->empty({2, 2});
  backend->add(sum, a, a);
  EXPECT_THROW(backend->add(sum, a, wrong), Error);
  EXPECT_THROW(backend->to_host(sum), Error);  // nothing is read back inside a step
  backend->abort_step();
  Tensor later = backend->empty({2, 2});
  backend->add(later, a, a);
  EXPECT_EQ(backend->to_host(later), (std::vector<float>{2, 4, 6, 8}));
}

// A session's later calls (a chat's turns) decode with the same step graph as its first: the
// token it feeds back on the device stays at one address (pipelined decoding).
TEST(CudaGraphSteps, ASessionsCallsReplayOneGraph) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = cuda_backend(true);
  auto model = Model::load(open_checkpoint(testing::model_path("tiny-llama")), *backend);
  GenerationSession session(*model, 64);
  GenerationOptions options;
  options.max_new_tokens = 6;
  std::vector<int32_t> conversation = {1, 5, 9, 13};
  const GenerationResult first = session.generate(conversation, options);
  const int64_t captures = graphs_of(*backend).captures();
  EXPECT_GE(captures, 1);
  conversation.insert(conversation.end(), first.ids.begin(), first.ids.end());
  conversation.insert(conversation.end(), {17, 19});
  const int64_t replays = graphs_of(*backend).replays();
  session.generate(conversation, options);
  EXPECT_EQ(graphs_of(*backend).captures(), captures);
  EXPECT_GT(graphs_of(*backend).replays(), replays);
}

TEST(CudaGraphSteps, PeakDeviceMemoryCoversTheTensorsMade) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = make_backend("cuda");
  Tensor big = backend->zeros({1024, 1024});  // 4 MiB
  EXPECT_GE(backend->peak_device_bytes(), int64_t{4} << 20);
}

// qkv_rope_cache is one kernel while decoding (RoPE and the cache store in the GEMV's epilogue):
// a step of it has one kernel-to-kernel edge fewer than a step of the two ops it stands for
// (edges that programmatic launch relaxes; none to count where PDL is off).
TEST(CudaGraphSteps, QkvRopeCacheIsOneKernel) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = cuda_backend(true);
  const int64_t k = 256, head_dim = 64, q_rows = 128, kv_rows = 64;
  auto weight = [&](int64_t rows, uint64_t seed) {
    return backend->upload_weight(
        make_host_tensor("w", {rows, k}, testing::random_values(rows * k, seed)));
  };
  const Tensor wq = weight(q_rows, 1), wk = weight(kv_rows, 2), wv = weight(kv_rows, 3);
  const Tensor* const weights[] = {&wq, &wk, &wv};
  const Tensor* const biases[] = {nullptr, nullptr, nullptr};
  const Tensor x = backend->from_host(testing::random_values(k, 4), {1, k});
  Tensor keys = backend->make_cache_tensor({4, kv_rows});
  Tensor values = backend->make_cache_tensor({4, kv_rows});
  Tensor q = backend->empty({1, q_rows}), kp = backend->empty({1, kv_rows}),
         v = backend->empty({1, kv_rows});
  const std::vector<int32_t> positions = {0};
  const std::vector<float> inv_freq(head_dim / 2, 0.5f);
  const cuda::StepGraphs& graphs = graphs_of(*backend);
  backend->begin_step();
  backend->qkv_rope_cache(q, kp, v, x, weights, biases, keys, values, head_dim, positions, inv_freq,
                          1, 1, 0);
  backend->end_step();
  const int64_t fused_edges = graphs.programmatic_edges();
  backend->begin_step();
  Tensor* const outs[] = {&q, &kp, &v};
  backend->shared_input_matmul(outs, x, weights, biases);
  backend->rope_and_cache(q, kp, v, keys, values, head_dim, positions, inv_freq, 1, 1, 0);
  backend->end_step();
  const int64_t plain_edges = graphs.programmatic_edges();
  if (plain_edges == 0) GTEST_SKIP() << "programmatic launch is off: no edges to count";
  EXPECT_EQ(fused_edges + 1, plain_edges);
}

}  // namespace
}  // namespace flow2
