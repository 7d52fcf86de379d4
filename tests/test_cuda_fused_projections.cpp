// Fused decoding projections: shared_input_matmul (attention's q, k and v of one x; one GEMV
// launch on CUDA) for dense and every split-layout format, and gated_matmul with split-layout
// weights (gate, up and the activation in one kernel), on CUDA against the CPU backend and
// against the ops they stand for; and the default shared_input_matmul on the CPU.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/error.h"
#include "flow2/quant.h"
#include "test_support.h"

namespace flow2 {
namespace {

using Matrix = std::vector<float>;

// A weight [n, k] of random values as a checkpoint holds it. Q4_A64 is MLX's form: Q4_1 blocks
// whose pairs share d and m (the CUDA backend keeps those once per 64).
HostTensor random_weight(DType dtype, int64_t n, int64_t k, uint64_t seed) {
  const Matrix values = testing::random_values(static_cast<size_t>(n * k), seed, 0.5f);
  const DType stored = dtype == DType::Q4_A64 ? DType::Q4_1 : dtype;
  auto bytes = std::make_shared<std::vector<std::byte>>(dtype_bytes(stored, values.size()));
  if (stored == DType::F32) {
    std::memcpy(bytes->data(), values.data(), bytes->size());
  } else if (stored == DType::BF16 || stored == DType::F16) {
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t bits = stored == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(bytes->data() + 2 * i, &bits, 2);
    }
  } else {
    quantize_blocks(stored, values.data(), values.size(), bytes->data());
  }
  if (dtype == DType::Q4_A64) {
    const size_t block = dtype_bytes(DType::Q4_1, 32);
    for (size_t b = 1; b < bytes->size() / block; b += 2) {
      std::memcpy(bytes->data() + b * block, bytes->data() + (b - 1) * block, 4);  // d and m
    }
  }
  HostTensor tensor{"w", stored, {n, k}, *bytes, nullptr};
  tensor.owner = bytes;
  return tensor;
}

// How far a product of 1-4 rows may be from the exact one on either backend, as
// test_backend_quantized bounds it: the CPU rounds x to int16 per block of 32 (half a step of
// the block's largest |x|), and float32 sums differ by their order.
double product_bound(const Matrix& x, const Matrix& w, int64_t m, int64_t n, int64_t k) {
  double worst = 0.0;
  for (int64_t row = 0; row < m; ++row) {
    Matrix largest(static_cast<size_t>(k / 32));
    for (int64_t j = 0; j < k; ++j) {
      largest[j / 32] = std::max(largest[j / 32], std::fabs(x[row * k + j]));
    }
    for (int64_t col = 0; col < n; ++col) {
      double int16 = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        int16 += std::fabs(w[col * k + j]) * largest[j / 32] / 32767.0 / 2;
      }
      worst = std::max(worst, int16);
    }
  }
  return 2 * (worst + 1e-4 * std::sqrt(k / 256.0));
}

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

class CudaFusedProjections : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
    if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
    cuda_ = make_backend("cuda");
    cpu_ = make_backend("cpu");
  }
  // shared_input_matmul of matrices with `rows` rows each against the CPU and, bit for bit,
  // against one matmul per matrix on CUDA (these shapes split every matrix's rows over warps as
  // its own launch would).
  void check_shared_input(DType dtype, const std::vector<int64_t>& rows, int64_t k);

  std::unique_ptr<Backend> cuda_, cpu_;
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
