// Decoding attention in one launch (cuda_decode_attention.cu) against the CPU backend on random
// inputs: float32 and bf16 caches, the head dimensions and query groups of the models flow2 runs,
// windows, sequences at different lengths and caches long enough that a block takes several key
// chunks. Cache rows past each sequence hold NaN, so a kernel that reads them fails. Skips
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend_list.h"
#include "test_support.h"

namespace flow2 {
namespace {

struct DecodeCase {
  AttentionShape shape;
  std::vector<int64_t> past;  // per sequence; empty: shape.n_past for all
};

class DecodeAttention {
 public:
  DecodeAttention(const DecodeCase& c, uint32_t seed) : shape_(c.shape), past_(c.past) {
    if (!past_.empty()) shape_.past = past_;
    int64_t longest = 0;
    for (int64_t b = 0; b < shape_.batch; ++b) longest = std::max(longest, past_length(shape_, b));
    capacity_ = longest + 4;
    kv_width_ = shape_.n_kv_heads * shape_.head_dim;
    std::mt19937 random(seed);
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    q_.resize(static_cast<size_t>(shape_.batch * shape_.n_heads * shape_.head_dim));
    for (float& x : q_) x = value(random);
    keys_.resize(static_cast<size_t>(shape_.batch * capacity_ * kv_width_));
    values_.resize(keys_.size());
    for (int64_t b = 0; b < shape_.batch; ++b) {
      for (int64_t row = 0; row < capacity_; ++row) {
        const bool held = row <= past_length(shape_, b);  // the past and the new token
        for (int64_t c = 0; c < kv_width_; ++c) {
          const size_t at = static_cast<size_t>((b * capacity_ + row) * kv_width_ + c);
          keys_[at] = held ? value(random) : std::numeric_limits<float>::quiet_NaN();
          values_[at] = held ? value(random) : std::numeric_limits<float>::quiet_NaN();
        }
      }
    }
  }

  // The output on `backend`; `typed`: the cache in make_cache_tensor's type (bf16 on CUDA).
  std::vector<float> run(Backend& backend, bool typed, int calls = 1) const {
    auto cache = [&](const std::vector<float>& rows) {
      Tensor source = backend.from_host(rows, {shape_.batch * capacity_, kv_width_});
      if (!typed) return source;
      Tensor stored = backend.make_cache_tensor({shape_.batch * capacity_, kv_width_});
      backend.kv_write(stored, source, shape_.batch, capacity_, 0);
      return stored;
    };
    Tensor keys = cache(keys_), values = cache(values_);
    Tensor q = backend.from_host(q_, {shape_.batch, shape_.n_heads * shape_.head_dim});
    std::vector<float> result;
    for (int call = 0; call < calls; ++call) {
      Tensor out = backend.from_host(std::vector<float>(q_.size(), NAN),
                                     {shape_.batch, shape_.n_heads * shape_.head_dim});
      backend.attention(out, q, keys, values, shape_);
      auto values_out = backend.to_host(out);
      if (call > 0) {
        EXPECT_EQ(values_out, result) << "call " << call << " differs from the first";
      }
      result = values_out;
    }
    return result;
  }

 private:
  AttentionShape shape_;
  std::vector<int64_t> past_;
  int64_t capacity_ = 0, kv_width_ = 0;
  std::vector<float> q_, keys_, values_;
};

bool all_finite(const std::vector<float>& values) {
  for (float value : values) {
    if (!std::isfinite(value)) return false;
  }
  return true;
}

double largest_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  if (!all_finite(actual)) return std::numeric_limits<double>::infinity();
  return testing::max_abs_difference(actual, expected);
}

// batch, tokens (1), past, heads, kv heads, head dim, scale, window
const DecodeCase kCases[] = {
    {{1, 1, 700, 32, 8, 128, 0.088f, 0}, {}},          // Llama 3.1 8B at 700 keys
    {{1, 1, 5, 9, 3, 64, 0.125f, 0}, {}},              // SmolLM2 (3 heads per kv head), few keys
    {{2, 1, 300, 12, 12, 64, 0.125f, 0}, {}},          // GPT-2 (one head per kv head)
    {{1, 1, 1000, 14, 2, 64, 0.125f, 0}, {}},          // Qwen2 0.5B (7 per kv head)
    {{1, 1, 300, 10, 2, 64, 0.125f, 0}, {}},           // 5 per kv head
    {{2, 1, 300, 12, 2, 128, 0.088f, 0}, {}},          // 6 per kv head
    {{3, 1, 4000, 8, 1, 128, 0.1f, 0}, {}},            // 8 per kv head; blocks take several chunks
    {{1, 1, 9000, 32, 8, 128, 0.088f, 0}, {}},         // long: many chunks per block
    {{2, 1, 500, 4, 2, 128, 0.1f, 64}, {}},            // a window: the first chunks are skipped
    {{1, 1, 0, 4, 2, 128, 0.1f, 0}, {}},               // the first token: one key
    {{3, 1, 0, 32, 8, 128, 0.088f, 0}, {10, 700, 0}},  // sequences at different lengths
    {{4, 1, 0, 8, 2, 64, 0.125f, 100}, {5, 2000, 130, 99}},  // ... with a window
};

TEST(CudaDecodeAttention, TakesTheModelsDecodingShapes) {
  for (const DecodeCase& c : kCases) {
    cuda::AttentionParams params;
    params.n_tokens = c.shape.n_tokens;
    params.n_heads = c.shape.n_heads;
    params.n_kv_heads = c.shape.n_kv_heads;
    params.head_dim = c.shape.head_dim;
    EXPECT_TRUE(cuda::decode_attention_supported(params)) << "heads " << c.shape.n_heads;
  }
  cuda::AttentionParams prompt;
  prompt.n_tokens = 2;
  prompt.head_dim = 128;
  EXPECT_FALSE(cuda::decode_attention_supported(prompt));  // prompts take the other kernels
}

TEST(CudaDecodeAttention, MatchesTheCpuOverFloat32AndBf16Caches) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto cpu = make_cpu_backend();
  auto cuda = make_backend("cuda");
  uint32_t seed = 1;
  for (const DecodeCase& c : kCases) {
    const DecodeAttention attention(c, seed++);
    const auto expected = attention.run(*cpu, false);
    // Float32 rows: the same float32 arithmetic in another order.
    EXPECT_LE(largest_error(attention.run(*cuda, false), expected), 1e-5)
        << "float32 cache, past " << c.shape.n_past << " heads " << c.shape.n_heads;
    // bf16 rows: keys and values round to bf16 (2^-9 relative). Rounding v moves the outputs,
    // averages of v in [-1, 1], by at most 2^-9; rounding k moves a score by scale * sum q dk,
    // a sum of independent errors of about 0.1 * 2^-9 sqrt(d) / 3 (at most 0.02 should they all
    // align), which moves the output by about as much: 5e-3 leaves several times the expected
    // error.
    EXPECT_LE(largest_error(attention.run(*cuda, true), expected), 5e-3)
        << "bf16 cache, past " << c.shape.n_past << " heads " << c.shape.n_heads;
  }
}

TEST(CudaDecodeAttention, StepsReplayedAsGraphsAgreeWithSingleCalls) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  // Inside steps the split count follows the cache capacity and the lengths are staged, so the
  // captured graph replays for every length; outside, the splits follow the length.
  ::setenv("FLOW2_CUDA_GRAPHS", "1", 1);
  auto cuda = make_backend("cuda");
  ::unsetenv("FLOW2_CUDA_GRAPHS");
  AttentionShape shape{1, 1, 0, 32, 8, 128, 0.088f, 0};
  const int64_t capacity = 700, kv_width = 8 * 128, q_width = 32 * 128;
  std::mt19937 random(9);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  auto uniform = [&](int64_t count) {
    std::vector<float> values(static_cast<size_t>(count));
    for (float& v : values) v = value(random);
    return values;
  };
  auto cache = [&] {
    Tensor stored = cuda->make_cache_tensor({capacity, kv_width});
    cuda->kv_write(stored, cuda->from_host(uniform(capacity * kv_width), {capacity, kv_width}), 1,
                   capacity, 0);
    return stored;
  };
  Tensor keys = cache(), values = cache();
  Tensor q = cuda->from_host(uniform(q_width), {1, q_width});
  Tensor stepped = cuda->empty({1, q_width}), single = cuda->empty({1, q_width});
  const auto& graphs = dynamic_cast<CudaBackend&>(*cuda).context().graphs();
  for (int64_t step = 0; step < 6; ++step) {
    shape.n_past = 600 + 17 * step;
    cuda->attention(single, q, keys, values, shape);
    const auto expected = cuda->to_host(single);
    cuda->begin_step();
    cuda->attention(stepped, q, keys, values, shape);
    cuda->end_step();
    const auto actual = cuda->to_host(stepped);
    EXPECT_LE(largest_error(actual, expected), 1e-5) << "step " << step;
  }
  // A step that allocates nothing needs no arena sizing: the first is captured, and every step
  // (the first too) launches that one graph, at six lengths.
  EXPECT_EQ(graphs.captures(), 1);
  EXPECT_EQ(graphs.replays(), 6);
}

TEST(CudaDecodeAttention, RepeatedCallsAgree) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  // The last block of each (sequence, kv head) resets its completion counter: a counter left
  // over would make no block of the next call merge the splits, leaving NaN.
  auto cuda = make_backend("cuda");
  for (const DecodeCase& c : {kCases[0], kCases[8], kCases[0]}) {
    const DecodeAttention attention(c, 77);
    EXPECT_TRUE(all_finite(attention.run(*cuda, true, 3))) << "past " << c.shape.n_past;
  }
}

}  // namespace
}  // namespace flow2
