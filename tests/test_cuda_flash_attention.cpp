// Prompt attention on bf16 tensor cores (cuda_flash_attention.cu) against the CPU backend's
// float32 attention on random inputs. Cache rows past the sequence hold NaN: a kernel that
// reads them (instead of masking or zero-filling) poisons its output. Built with the toolkit;
// skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "backend/cuda/cuda_backend.h"
#include "backend_list.h"
#include "test_support.h"

namespace flow2 {
namespace {

std::vector<float> uniform(size_t count, std::mt19937& random) {
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = value(random);
  return values;
}

// The largest |cuda - cpu| over the output, for one shape; `bf16_cache`: the CUDA side keeps
// its cache in make_cache_tensor's bf16, written with kv_write; `key_groups`: the prompt
// kernel's split of each key tile (1 or 2; 0 lets it choose).
double flash_error(const AttentionShape& shape, uint64_t seed, bool bf16_cache = false,
                   int key_groups = 0) {
  std::mt19937 random(static_cast<uint32_t>(seed));
  const int64_t capacity = shape.n_past + shape.n_tokens + 5;
  const int64_t q_width = shape.n_heads * shape.head_dim,
                kv_width = shape.n_kv_heads * shape.head_dim;
  auto q = uniform(static_cast<size_t>(shape.batch * shape.n_tokens * q_width), random);
  auto k = uniform(static_cast<size_t>(shape.batch * capacity * kv_width), random);
  auto v = uniform(k.size(), random);
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t row = shape.n_past + shape.n_tokens; row < capacity; ++row) {
      for (int64_t c = 0; c < kv_width; ++c) {
        k[(b * capacity + row) * kv_width + c] = std::numeric_limits<float>::quiet_NaN();
        v[(b * capacity + row) * kv_width + c] = std::numeric_limits<float>::quiet_NaN();
      }
    }
  }
  auto cache = [&](Backend& backend, const std::vector<float>& rows, bool typed) {
    Tensor source = backend.from_host(rows, {shape.batch * capacity, kv_width});
    if (!typed) return source;
    Tensor stored = backend.make_cache_tensor({shape.batch * capacity, kv_width});
    backend.kv_write(stored, source, shape.batch, capacity, 0);
    return stored;
  };
  auto run = [&](Backend& backend, bool typed) {
    Tensor out =
        backend.from_host(std::vector<float>(q.size(), std::numeric_limits<float>::quiet_NaN()),
                          {shape.batch * shape.n_tokens, q_width});
    Tensor keys = cache(backend, k, typed), values = cache(backend, v, typed);
    if (typed) {
      EXPECT_EQ(keys.dtype(), DType::BF16);
    }
    backend.attention(out, backend.from_host(q, {shape.batch * shape.n_tokens, q_width}), keys,
                      values, shape);
    return backend.to_host(out);
  };
  auto cpu = make_cpu_backend();
  auto cuda = make_backend("cuda");
  dynamic_cast<CudaBackend&>(*cuda).set_tensor_core_attention(true);
  dynamic_cast<CudaBackend&>(*cuda).set_attention_key_groups(key_groups);
  auto expected = run(*cpu, false);
  auto actual = run(*cuda, bf16_cache);
  for (float value : actual) {
    if (!std::isfinite(value)) return std::numeric_limits<double>::infinity();
  }
  return testing::max_abs_difference(actual, expected);
}

TEST(CudaFlashAttention, MatchesFloat32AttentionWithinBf16Rounding) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  // batch, queries, past, heads, kv heads, head dim, scale, window
  const AttentionShape shapes[] = {
      {1, 16, 0, 2, 2, 16, 0.25f, 0},        // one partial query tile, MHA
      {1, 37, 0, 4, 2, 64, 0.125f, 0},       // GQA, a ragged tile
      {2, 70, 30, 8, 2, 128, 0.088f, 0},     // continuing a cache, two query tiles
      {1, 100, 5, 2, 1, 16, 0.25f, 20},      // sliding window across key tiles
      {2, 64, 0, 4, 4, 32, 0.18f, 0},        // exactly one tile
      {1, 200, 150, 4, 2, 128, 0.088f, 50},  // window far from the first key
      {3, 20, 300, 6, 3, 64, 0.125f, 0},     // many past keys, few queries
  };
  for (int groups : {1, 2}) {
    uint64_t seed = 1;
    for (const AttentionShape& shape : shapes) {
      // Inputs in [-1, 1]: q, k and v round to bf16 (2^-9 relative) and so do the weights p;
      // outputs are averages of v, so 1e-2 bounds the error with room.
      const double error = flash_error(shape, seed, false, groups);
      EXPECT_LE(error, 1e-2) << "key groups " << groups << ", tokens " << shape.n_tokens << " past "
                             << shape.n_past << " head_dim " << shape.head_dim << " window "
                             << shape.sliding_window;
      // The same over a bf16 cache: the kernel rounds keys and values to bf16 either way.
      EXPECT_LE(flash_error(shape, seed, true, groups), 1e-2)
          << "key groups " << groups << ", bf16 cache, tokens " << shape.n_tokens;
      ++seed;
    }
  }
}

TEST(CudaFlashAttention, DecodingOverABf16CacheMatchesFloat32) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  // Few queries take the split-key decoding kernel, reading bf16 rows.
  const AttentionShape shapes[] = {{1, 1, 700, 8, 2, 128, 0.088f, 0},
                                   {3, 1, 40, 4, 4, 64, 0.125f, 0},
                                   {2, 3, 100, 6, 2, 96, 0.1f, 30}};
  uint64_t seed = 50;
  for (const AttentionShape& shape : shapes) {
    // Only keys and values round to bf16 here (2^-9 relative): averages of v move by less.
    EXPECT_LE(flash_error(shape, seed++, true), 5e-3) << "past " << shape.n_past;
  }
}

TEST(CudaFlashAttention, OnlyForSupportedHeadDimensions) {
  EXPECT_TRUE(cuda::flash_attention_supported(128));
  EXPECT_TRUE(cuda::flash_attention_supported(64));
  EXPECT_FALSE(cuda::flash_attention_supported(96));  // the exact kernel takes these
  EXPECT_FALSE(cuda::flash_attention_supported(24));
}

}  // namespace
}  // namespace flow2
