// Fused decoding projections: shared_input_matmul (attention's q, k and v of one x; one GEMV
// launch on CUDA) for dense and every split-layout format, qkv_rope_cache (the same launch
// rotating and caching in its epilogue), and gated_matmul with split-layout weights (gate, up and
// the activation in one kernel), on CUDA against the CPU backend and against the ops they stand
// for; and the defaults of shared_input_matmul and qkv_rope_cache on the CPU.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "backend_list.h"
#include "cuda_against_cpu.h"
#include "flow2/backend.h"
#include "flow2/error.h"
#include "random_weight.h"
#include "test_support.h"

namespace flow2 {
namespace {

using Matrix = std::vector<float>;

using testing::product_bound;
using testing::random_weight;

const Tensor* optional(const Tensor& tensor, bool present) {
  return present ? &tensor : nullptr;
}

// Every format the CUDA GEMV reads: dense rows and the split layout.
const DType kFormats[] = {DType::BF16, DType::F16,  DType::F32,    DType::Q8_0,
                          DType::Q4_0, DType::Q4_1, DType::Q4_A64, DType::Q4_K};
const DType kSplitFormats[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_A64, DType::Q4_K};

TEST(SharedInputMatmul, DefaultIsOneMatmulPerWeight) {
  auto cpu = make_backend("cpu");
  const int64_t m = 2, k = 64;
  for (DType dtype : {DType::F32, DType::BF16, DType::Q4_0}) {
    const Tensor q = cpu->upload_weight(random_weight(dtype, 48, k, 1));
    const Tensor v = cpu->upload_weight(random_weight(dtype, 16, k, 2));
    const Tensor bias = cpu->from_host(testing::random_values(16, 3), {16});
    const Tensor x = cpu->from_host(testing::random_values(m * k, 4), {m, k});
    Tensor fused_q = cpu->empty({m, 48}), fused_v = cpu->empty({m, 16});
    Tensor* const outs[] = {&fused_q, &fused_v};
    const Tensor* const weights[] = {&q, &v};
    const Tensor* const biases[] = {nullptr, &bias};
    cpu->shared_input_matmul(outs, x, weights, biases);
    Tensor plain_q = cpu->empty({m, 48}), plain_v = cpu->empty({m, 16});
    cpu->matmul(plain_q, x, q, nullptr);
    cpu->matmul(plain_v, x, v, &bias);
    EXPECT_EQ(cpu->to_host(fused_q), cpu->to_host(plain_q)) << dtype_name(dtype);
    EXPECT_EQ(cpu->to_host(fused_v), cpu->to_host(plain_v)) << dtype_name(dtype);
  }
}

TEST(QkvRopeCache, DefaultIsTheProductsThenRopeAndCache) {
  auto cpu = make_backend("cpu");
  const int64_t m = 2, k = 64, head_dim = 8, kv = 8;
  const Tensor wq = cpu->upload_weight(random_weight(DType::Q4_0, 16, k, 1));
  const Tensor wk = cpu->upload_weight(random_weight(DType::Q4_0, kv, k, 2));
  const Tensor wv = cpu->upload_weight(random_weight(DType::Q4_0, kv, k, 3));
  const Tensor bias = cpu->from_host(testing::random_values(kv, 4), {kv});
  const Tensor x = cpu->from_host(testing::random_values(m * k, 5), {m, k});
  const Tensor* const weights[] = {&wq, &wk, &wv};
  const Tensor* const biases[] = {nullptr, nullptr, &bias};
  const std::vector<int32_t> positions = {4, 5};
  const std::vector<float> inv_freq = {1.0f, 0.5f, 0.25f, 0.125f};
  const Matrix start = testing::random_values(4 * kv, 6);
  Tensor fused_k = cpu->from_host(start, {4, kv}), fused_v = cpu->from_host(start, {4, kv});
  Tensor plain_k = cpu->from_host(start, {4, kv}), plain_v = cpu->from_host(start, {4, kv});
  Tensor fq = cpu->empty({m, 16}), fk = cpu->empty({m, kv}), fv = cpu->empty({m, kv});
  Tensor pq = cpu->empty({m, 16}), pk = cpu->empty({m, kv}), pv = cpu->empty({m, kv});
  cpu->qkv_rope_cache(fq, fk, fv, x, weights, biases, fused_k, fused_v, head_dim, positions,
                      inv_freq, 1, m, 2);
  cpu->matmul(pq, x, wq, nullptr);
  cpu->matmul(pk, x, wk, nullptr);
  cpu->matmul(pv, x, wv, &bias);
  cpu->rope(pq, head_dim, positions, inv_freq);
  cpu->rope(pk, head_dim, positions, inv_freq);
  cpu->kv_write(plain_k, pk, 1, m, 2);
  cpu->kv_write(plain_v, pv, 1, m, 2);
  EXPECT_EQ(cpu->to_host(fq), cpu->to_host(pq));
  EXPECT_EQ(cpu->to_host(fk), cpu->to_host(pk));
  EXPECT_EQ(cpu->to_host(fv), cpu->to_host(pv));
  EXPECT_EQ(cpu->to_host(fused_k), cpu->to_host(plain_k));
  EXPECT_EQ(cpu->to_host(fused_v), cpu->to_host(plain_v));
}

TEST(SharedInputMatmul, SpansOfDifferentLengthsAreAnError) {
  auto cpu = make_backend("cpu");
  const Tensor w = cpu->from_host(testing::random_values(8 * 4, 1), {8, 4});
  const Tensor x = cpu->from_host(testing::random_values(4, 2), {1, 4});
  Tensor out = cpu->empty({1, 8});
  Tensor* const outs[] = {&out};
  const Tensor* const weights[] = {&w, &w};
  const Tensor* const biases[] = {nullptr, nullptr};
  EXPECT_THROW(cpu->shared_input_matmul(outs, x, weights, biases), Error);
}

class CudaFusedProjections : public testing::CudaAgainstCpu {
 protected:
  // shared_input_matmul of matrices with `rows` rows each against the CPU and, bit for bit,
  // against one matmul per matrix on CUDA (these shapes split every matrix's rows over warps as
  // its own launch would).
  void check_shared_input(DType dtype, const std::vector<int64_t>& rows, int64_t k);
  // qkv_rope_cache against shared_input_matmul and rope_and_cache on CUDA, bit for bit (products,
  // rotated q and k, and both caches), for 1-4 rows of x as sequences at different lengths and as
  // the tokens of one; with and without biases and rotation.
  void check_qkv_rope_cache(DType dtype, int64_t q_heads, int64_t kv_heads, int64_t head_dim,
                            int64_t k);
};

void CudaFusedProjections::check_shared_input(DType dtype, const std::vector<int64_t>& rows,
                                              int64_t k) {
  const size_t count = rows.size();
  std::vector<Matrix> decoded;
  std::vector<Tensor> weights, cpu_weights, biases, cpu_biases;
  for (size_t i = 0; i < count; ++i) {
    const HostTensor host = random_weight(dtype, rows[i], k, 10 + i);
    decoded.push_back(host.to_f32());
    weights.push_back(cuda_->upload_weight(host));
    ASSERT_EQ(weights.back().dtype(), dtype) << "the device form is the format under test";
    cpu_weights.push_back(cpu_->upload_weight(host));
    const Matrix bias = testing::random_values(static_cast<size_t>(rows[i]), 20 + i);
    biases.push_back(cuda_->from_host(bias, {rows[i]}));
    cpu_biases.push_back(cpu_->from_host(bias, {rows[i]}));
  }
  for (int64_t m = 1; m <= 4; ++m) {
    const Matrix values = testing::random_values(static_cast<size_t>(m * k), 30 + m);
    const Tensor x = cuda_->from_host(values, {m, k}), cpu_x = cpu_->from_host(values, {m, k});
    std::vector<double> bounds;
    for (size_t i = 0; i < count; ++i) {
      bounds.push_back(product_bound(values, decoded[i], m, rows[i], k));
    }
    for (bool with_bias : {false, true}) {
      std::vector<Tensor> fused, cpu_out;
      for (size_t i = 0; i < count; ++i) {
        fused.push_back(cuda_->empty({m, rows[i]}));
        cpu_out.push_back(cpu_->empty({m, rows[i]}));
      }
      std::vector<Tensor*> outs, cpu_outs;
      std::vector<const Tensor*> w, cpu_w, b, cpu_b;
      for (size_t i = 0; i < count; ++i) {
        outs.push_back(&fused[i]);
        cpu_outs.push_back(&cpu_out[i]);
        w.push_back(&weights[i]);
        cpu_w.push_back(&cpu_weights[i]);
        // With biases, matrix 1 still has none: a null entry among others.
        b.push_back(optional(biases[i], with_bias && i != 1));
        cpu_b.push_back(optional(cpu_biases[i], with_bias && i != 1));
      }
      cuda_->shared_input_matmul(outs, x, w, b);
      cpu_->shared_input_matmul(cpu_outs, cpu_x, cpu_w, cpu_b);
      for (size_t i = 0; i < count; ++i) {
        const std::string what = fmt::format("{} matrix {} of {}x{}, m={}, bias {}",
                                             dtype_name(dtype), i, rows[i], k, m, b[i] != nullptr);
        Tensor alone = cuda_->empty({m, rows[i]});
        cuda_->matmul(alone, x, weights[i], b[i]);
        const Matrix result = cuda_->to_host(fused[i]);
        EXPECT_EQ(result, cuda_->to_host(alone)) << what;
        EXPECT_LT(testing::max_abs_difference(result, cpu_->to_host(cpu_out[i])), bounds[i])
            << what;
      }
    }
  }
}

// Fills a KV cache with random values (make_cache_tensor's dtype: bf16 beside 16-bit or quantized
// weights), as kv_write of one sequence would.
Tensor random_cache(Backend& backend, int64_t rows, int64_t width, uint64_t seed) {
  Tensor cache = backend.make_cache_tensor({rows, width});
  const Tensor values =
      backend.from_host(testing::random_values(rows * width, seed), {rows, width});
  backend.kv_write(cache, values, 1, rows, 0);
  return cache;
}

void CudaFusedProjections::check_qkv_rope_cache(DType dtype, int64_t q_heads, int64_t kv_heads,
                                                int64_t head_dim, int64_t k) {
  const int64_t q_rows = q_heads * head_dim, kv_rows = kv_heads * head_dim, capacity = 16;
  const int64_t widths[] = {q_rows, kv_rows, kv_rows};
  std::vector<Tensor> weights, biases;
  for (int i = 0; i < 3; ++i) {
    weights.push_back(cuda_->upload_weight(random_weight(dtype, widths[i], k, 70 + i)));
    biases.push_back(cuda_->from_host(testing::random_values(widths[i], 80 + i), {widths[i]}));
  }
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / head_dim));
  }
  const std::vector<int64_t> lengths = {3, 10, 0, 7};
  for (int64_t m = 1; m <= 4; ++m) {
    for (bool one_sequence : {false, true}) {
      const int64_t batch = one_sequence ? 1 : m, n_tokens = m / batch;
      std::vector<int64_t> past(lengths.begin(), lengths.begin() + batch);
      std::vector<int32_t> positions;
      for (int64_t row = 0; row < m; ++row) {
        positions.push_back(static_cast<int32_t>(past[row / n_tokens] + row % n_tokens));
      }
      const std::span<const int64_t> pasts =
          batch > 1 ? std::span<const int64_t>(past) : std::span<const int64_t>();
      const Tensor x = cuda_->from_host(testing::random_values(m * k, 90 + m), {m, k});
      for (bool rotate : {true, false}) {
        for (bool with_bias : {false, true}) {
          const std::string what = fmt::format(
              "{} heads {}/{} of {}, k={}, m={} as {} sequences, rotate {}, bias {}",
              dtype_name(dtype), q_heads, kv_heads, head_dim, k, m, batch, rotate, with_bias);
          const std::span<const float> frequencies =
              rotate ? std::span<const float>(inv_freq) : std::span<const float>();
          const Tensor* const w[] = {&weights[0], &weights[1], &weights[2]};
          const Tensor* const b[] = {optional(biases[0], with_bias), nullptr,
                                     optional(biases[2], with_bias)};
          // The same starting caches for both.
          Tensor fused_k = random_cache(*cuda_, batch * capacity, kv_rows, 100);
          Tensor fused_v = random_cache(*cuda_, batch * capacity, kv_rows, 101);
          Tensor plain_k = random_cache(*cuda_, batch * capacity, kv_rows, 100);
          Tensor plain_v = random_cache(*cuda_, batch * capacity, kv_rows, 101);
          Tensor fq = cuda_->empty({m, q_rows}), fk = cuda_->empty({m, kv_rows}),
                 fv = cuda_->empty({m, kv_rows});
          Tensor pq = cuda_->empty({m, q_rows}), pk = cuda_->empty({m, kv_rows}),
                 pv = cuda_->empty({m, kv_rows});
          cuda_->qkv_rope_cache(fq, fk, fv, x, w, b, fused_k, fused_v, head_dim, positions,
                                frequencies, batch, n_tokens, past[0], pasts);
          Tensor* const plain[] = {&pq, &pk, &pv};
          cuda_->shared_input_matmul(plain, x, w, b);
          cuda_->rope_and_cache(pq, pk, pv, plain_k, plain_v, head_dim, positions, frequencies,
                                batch, n_tokens, past[0], pasts);
          EXPECT_EQ(cuda_->to_host(fq), cuda_->to_host(pq)) << what << ": q";
          EXPECT_EQ(cuda_->to_host(fk), cuda_->to_host(pk)) << what << ": k";
          EXPECT_EQ(cuda_->to_host(fv), cuda_->to_host(pv)) << what << ": v";
          EXPECT_EQ(cuda_->to_host(fused_k), cuda_->to_host(plain_k)) << what << ": k cache";
          EXPECT_EQ(cuda_->to_host(fused_v), cuda_->to_host(plain_v)) << what << ": v cache";
        }
      }
    }
  }
}

// Heads of 64 and 128 (Llama's and SmolLM2's), grouped queries, rows of 256, 512 and 4096: every
// tiling of the GEMVs (split layout: one warp a row at 256 for 4-bit codes, rows over 2-8 warps
// above; Q4_0's few-block tiling at 16 heads, its wide one at Llama-3.1-8B's 32; dense rows: one
// warp a row below 1024, 4 at 16 heads of 4096). Dense rows of 1024 for few heads would take 8
// warps a row, heads of 16 do not pair up in the kernels' tiles: there the two ops run.
TEST_F(CudaFusedProjections, QkvRopeCacheMatchesTheOpsOneByOne) {
  for (DType dtype : kFormats) {
    check_qkv_rope_cache(dtype, 4, 2, 64, 256);
    check_qkv_rope_cache(dtype, 4, 2, 64, 512);
    check_qkv_rope_cache(dtype, 16, 4, 128, 4096);
  }
  check_qkv_rope_cache(DType::BF16, 4, 2, 64, 1024);
  check_qkv_rope_cache(DType::F32, 4, 2, 64, 1024);
  check_qkv_rope_cache(DType::Q4_0, 32, 8, 128, 4096);
  check_qkv_rope_cache(DType::BF16, 4, 4, 16, 256);
  check_qkv_rope_cache(DType::Q4_0, 4, 4, 16, 256);
}

// Recorded in decoding steps, the launch replays as a graph with each step's positions and cache
// rows.
TEST_F(CudaFusedProjections, QkvRopeCacheReplaysInStepGraphs) {
  const int64_t k = 512, head_dim = 64, kv_rows = 128, capacity = 8;
  std::vector<Tensor> weights;
  const int64_t widths[] = {256, kv_rows, kv_rows};
  for (int i = 0; i < 3; ++i) {
    weights.push_back(cuda_->upload_weight(random_weight(DType::Q4_0, widths[i], k, 110 + i)));
  }
  const Tensor* const w[] = {&weights[0], &weights[1], &weights[2]};
  const Tensor* const b[] = {nullptr, nullptr, nullptr};
  const std::vector<float> inv_freq(head_dim / 2, 0.25f);
  Tensor x = cuda_->from_host(testing::random_values(k, 120), {1, k});
  const Tensor delta = cuda_->from_host(testing::random_values(k, 121), {1, k});
  Tensor fused_k = random_cache(*cuda_, capacity, kv_rows, 122);
  Tensor fused_v = random_cache(*cuda_, capacity, kv_rows, 123);
  Tensor plain_k = random_cache(*cuda_, capacity, kv_rows, 122);
  Tensor plain_v = random_cache(*cuda_, capacity, kv_rows, 123);
  Tensor fq = cuda_->empty({1, 256}), fk = cuda_->empty({1, kv_rows}),
         fv = cuda_->empty({1, kv_rows});
  for (int step = 0; step < 4; ++step) {
    cuda_->add(x, x, delta);  // new values at the same address
    const std::vector<int32_t> positions = {step};
    const std::vector<int64_t> past = {step};
    cuda_->begin_step();
    cuda_->qkv_rope_cache(fq, fk, fv, x, w, b, fused_k, fused_v, head_dim, positions, inv_freq, 1,
                          1, step, past);
    cuda_->end_step();
    Tensor pq = cuda_->empty({1, 256}), pk = cuda_->empty({1, kv_rows}),
           pv = cuda_->empty({1, kv_rows});
    Tensor* const plain[] = {&pq, &pk, &pv};
    cuda_->shared_input_matmul(plain, x, w, b);
    cuda_->rope_and_cache(pq, pk, pv, plain_k, plain_v, head_dim, positions, inv_freq, 1, 1, step);
    EXPECT_EQ(cuda_->to_host(fq), cuda_->to_host(pq)) << "step " << step;
    EXPECT_EQ(cuda_->to_host(fk), cuda_->to_host(pk)) << "step " << step;
    EXPECT_EQ(cuda_->to_host(fv), cuda_->to_host(pv)) << "step " << step;
    EXPECT_EQ(cuda_->to_host(fused_k), cuda_->to_host(plain_k)) << "step " << step;
    EXPECT_EQ(cuda_->to_host(fused_v), cuda_->to_host(plain_v)) << "step " << step;
  }
}

// Three matrices as a model's q, k and v (multiples of a block's rows, and odd counts whose last
// block is partly empty), four (the most one launch takes), one, and five (the products one by
// one); rows of 512 (one warp per row) and 4096 (rows split over warps).
TEST_F(CudaFusedProjections, SharedInputMatmulMatchesTheCpu) {
  for (DType dtype : kFormats) {
    check_shared_input(dtype, {256, 64, 64}, 512);
    check_shared_input(dtype, {37, 5, 130, 1}, 512);
    check_shared_input(dtype, {300}, 512);
    check_shared_input(dtype, {256, 64, 64}, 4096);
    check_shared_input(dtype, {33, 7, 9, 64, 100}, 512);
  }
}

// Prompts with 16-bit weights: q, k and v (and gate and up) of one x as GEMMs, against the CPU
// and against matmul; the GEMMs after the first find x rounded already (Context::holds_rounded).
TEST_F(CudaFusedProjections, PromptProductsMatchTheCpu) {
  const int64_t k = 512;
  const std::vector<int64_t> rows = {256, 64, 64};
  for (DType dtype : {DType::BF16, DType::F16}) {
    std::vector<HostTensor> hosts;
    std::vector<Matrix> decoded;
    std::vector<Tensor> weights, cpu_weights;
    for (size_t i = 0; i < rows.size(); ++i) {
      hosts.push_back(random_weight(dtype, rows[i], k, 40 + i));
      decoded.push_back(hosts.back().to_f32());
      weights.push_back(cuda_->upload_weight(hosts.back()));
      cpu_weights.push_back(cpu_->upload_weight(hosts.back()));
    }
    const Matrix bias_values = testing::random_values(static_cast<size_t>(rows[0]), 50);
    const Tensor bias = cuda_->from_host(bias_values, {rows[0]});
    const Tensor cpu_bias = cpu_->from_host(bias_values, {rows[0]});
    for (int64_t m : {9, 64}) {
      const Matrix values = testing::random_values(static_cast<size_t>(m * k), 60 + m);
      const Tensor x = cuda_->from_host(values, {m, k}), cpu_x = cpu_->from_host(values, {m, k});
      std::vector<Tensor> outs, cpu_outs;
      for (int64_t n : rows) {
        outs.push_back(cuda_->empty({m, n}));
        cpu_outs.push_back(cpu_->empty({m, n}));
      }
      std::vector<Tensor*> out_list = {&outs[0], &outs[1], &outs[2]};
      std::vector<Tensor*> cpu_out_list = {&cpu_outs[0], &cpu_outs[1], &cpu_outs[2]};
      const std::vector<const Tensor*> w = {&weights[0], &weights[1], &weights[2]};
      const std::vector<const Tensor*> cpu_w = {&cpu_weights[0], &cpu_weights[1], &cpu_weights[2]};
      const std::vector<const Tensor*> b = {&bias, nullptr, nullptr};
      const std::vector<const Tensor*> cpu_b = {&cpu_bias, nullptr, nullptr};
      cuda_->shared_input_matmul(out_list, x, w, b);
      cpu_->shared_input_matmul(cpu_out_list, cpu_x, cpu_w, cpu_b);
      // x rounds to 16 bits (2^-9 relative at bf16): 2^-8 of sum |x w| bounds a product's move;
      // the same GEMM through matmul differs at most by float32 sums' order.
      double largest = 0.0;
      for (size_t i = 0; i < rows.size(); ++i) {
        largest = std::max(largest, testing::largest_abs_product_sum(values, decoded[i], k));
      }
      const double bound = std::ldexp(largest, -8);
      for (size_t i = 0; i < rows.size(); ++i) {
        Tensor alone = cuda_->empty({m, rows[i]});
        cuda_->matmul(alone, x, weights[i], b[i]);
        const Matrix result = cuda_->to_host(outs[i]);
        const std::string what = fmt::format("{} matrix {}, m={}", dtype_name(dtype), i, m);
        EXPECT_LE(testing::max_abs_difference(result, cpu_->to_host(cpu_outs[i])), bound) << what;
        EXPECT_LE(testing::max_abs_difference(result, cuda_->to_host(alone)), 1e-4) << what;
      }
      // gate and up, then the activation.
      Tensor gated = cuda_->empty({m, rows[1]}), cpu_gated = cpu_->empty({m, rows[1]});
      cuda_->gated_matmul(gated, x, weights[1], weights[2], Activation::Silu);
      cpu_->gated_matmul(cpu_gated, cpu_x, cpu_weights[1], cpu_weights[2], Activation::Silu);
      // silu(g) u moves by about |u| times g's bound plus |silu(g)| times u's (|silu'| < 1.1).
      double g_largest = 0.0;  // of |gate x| and |up x|
      for (int i : {1, 2}) {
        for (float value : cpu_->to_host(cpu_outs[i])) {
          g_largest = std::max(g_largest, static_cast<double>(std::fabs(value)));
        }
      }
      EXPECT_LE(testing::max_abs_difference(cuda_->to_host(gated), cpu_->to_host(cpu_gated)),
                2.2 * (g_largest + bound) * bound + bound * bound)
          << dtype_name(dtype) << " gated, m=" << m;
    }
  }
}

// Mixed formats, and x rows beyond the GEMV, take the products one by one.
TEST_F(CudaFusedProjections, OtherProjectionsFallBackToMatmuls) {
  const int64_t k = 256;
  const HostTensor q = random_weight(DType::Q4_0, 64, k, 1),
                   v = random_weight(DType::BF16, 32, k, 2);
  const Tensor wq = cuda_->upload_weight(q), wv = cuda_->upload_weight(v);
  for (int64_t m : {1, 9}) {
    const Tensor x = cuda_->from_host(testing::random_values(m * k, 3), {m, k});
    Tensor fused_q = cuda_->empty({m, 64}), fused_v = cuda_->empty({m, 32});
    Tensor* const outs[] = {&fused_q, &fused_v};
    const Tensor* const weights[] = {&wq, &wv};
    const Tensor* const biases[] = {nullptr, nullptr};
    cuda_->shared_input_matmul(outs, x, weights, biases);
    Tensor plain_q = cuda_->empty({m, 64}), plain_v = cuda_->empty({m, 32});
    cuda_->matmul(plain_q, x, wq, nullptr);
    cuda_->matmul(plain_v, x, wv, nullptr);
    EXPECT_EQ(cuda_->to_host(fused_q), cuda_->to_host(plain_q)) << "m=" << m;
    EXPECT_EQ(cuda_->to_host(fused_v), cuda_->to_host(plain_v)) << "m=" << m;
  }
}

// Recorded in a decoding step, the launch replays as a graph on new values of x.
TEST_F(CudaFusedProjections, SharedInputMatmulReplaysInStepGraphs) {
  const int64_t m = 2, k = 512;
  const Tensor q = cuda_->upload_weight(random_weight(DType::Q4_K, 128, k, 1));
  const Tensor v = cuda_->upload_weight(random_weight(DType::Q4_K, 32, k, 2));
  const Tensor bias = cuda_->from_host(testing::random_values(32, 3), {32});
  Tensor x = cuda_->from_host(testing::random_values(m * k, 4), {m, k});
  const Tensor delta = cuda_->from_host(testing::random_values(m * k, 5), {m, k});
  Tensor out_q = cuda_->empty({m, 128}), out_v = cuda_->empty({m, 32});
  Tensor* const outs[] = {&out_q, &out_v};
  const Tensor* const weights[] = {&q, &v};
  const Tensor* const biases[] = {nullptr, &bias};
  for (int step = 0; step < 3; ++step) {
    cuda_->add(x, x, delta);  // new values at the same address
    cuda_->begin_step();
    cuda_->shared_input_matmul(outs, x, weights, biases);
    cuda_->end_step();
    Tensor plain_q = cuda_->empty({m, 128}), plain_v = cuda_->empty({m, 32});
    cuda_->matmul(plain_q, x, q, nullptr);
    cuda_->matmul(plain_v, x, v, &bias);
    EXPECT_EQ(cuda_->to_host(out_q), cuda_->to_host(plain_q)) << "step " << step;
    EXPECT_EQ(cuda_->to_host(out_v), cuda_->to_host(plain_v)) << "step " << step;
  }
}

// act(g) * u moves by about act'(g) * (error of g) * u + act(g) * (error of u).
double gated_bound(float g, float u, double error) {
  return 1.2 * std::fabs(u) * error + (std::fabs(g) + 1.2 * error) * error +
         1e-5 * std::fabs(g * u);
}

// gated_matmul with split-layout gate and up: one kernel on CUDA, equal bit for bit to two
// matmuls and gated_activation there (same row splits), and within the products' bounds of the
// CPU's.
TEST_F(CudaFusedProjections, GatedMatmulWithSplitWeightsMatchesTheCpu) {
  for (DType dtype : kSplitFormats) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{300, 512}, {37, 4096}, {1, 256}}) {
      const HostTensor gate_host = random_weight(dtype, n, k, 40),
                       up_host = random_weight(dtype, n, k, 41);
      const Matrix gate_values = gate_host.to_f32(), up_values = up_host.to_f32();
      const Tensor gate = cuda_->upload_weight(gate_host), up = cuda_->upload_weight(up_host);
      ASSERT_EQ(gate.dtype(), dtype);
      const Tensor cpu_gate = cpu_->upload_weight(gate_host), cpu_up = cpu_->upload_weight(up_host);
      for (int64_t m = 1; m <= 4; ++m) {
        const Matrix values = testing::random_values(static_cast<size_t>(m * k), 50 + m);
        const Tensor x = cuda_->from_host(values, {m, k}), cpu_x = cpu_->from_host(values, {m, k});
        const double error = std::max(product_bound(values, gate_values, m, n, k),
                                      product_bound(values, up_values, m, n, k));
        Tensor g = cpu_->empty({m, n}), u = cpu_->empty({m, n});
        cpu_->matmul(g, cpu_x, cpu_gate, nullptr);
        cpu_->matmul(u, cpu_x, cpu_up, nullptr);
        const Matrix gs = cpu_->to_host(g), us = cpu_->to_host(u);
        for (Activation activation : {Activation::Silu, Activation::GeluTanh}) {
          const std::string what = fmt::format("{} {}x{} m={} activation {}", dtype_name(dtype), n,
                                               k, m, static_cast<int>(activation));
          Tensor fused = cuda_->empty({m, n}), plain = cuda_->empty({m, n});
          Tensor plain_up = cuda_->empty({m, n}), expected = cpu_->empty({m, n});
          cuda_->gated_matmul(fused, x, gate, up, activation);
          cuda_->matmul(plain, x, gate, nullptr);
          cuda_->matmul(plain_up, x, up, nullptr);
          cuda_->gated_activation(plain, plain, plain_up, activation);
          cpu_->gated_matmul(expected, cpu_x, cpu_gate, cpu_up, activation);
          const Matrix result = cuda_->to_host(fused), cpu_result = cpu_->to_host(expected);
          EXPECT_EQ(result, cuda_->to_host(plain)) << what;
          for (size_t i = 0; i < result.size(); ++i) {
            ASSERT_LE(std::fabs(result[i] - cpu_result[i]), gated_bound(gs[i], us[i], error))
                << what << " element " << i;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace flow2
