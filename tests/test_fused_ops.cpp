// Fused ops (Backend's add_rms_norm, rope_and_cache) compute exactly what the ops they stand for
// compute, on every inference backend, on random inputs (a CUDA backend runs them as one kernel).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/dtype.h"
#include "reference_ops.h"
#include "test_support.h"

namespace flow2 {
namespace {

std::vector<float> random_values(size_t count, uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = normal(random);
  return values;
}

class FusedOps : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason(GetParam()); !reason.empty()) GTEST_SKIP() << reason;
    backend_ = make_backend(GetParam());
  }
  Tensor upload(const std::vector<float>& values, Shape shape) {
    return backend_->from_host(values, std::move(shape));
  }
  std::unique_ptr<Backend> backend_;
};

// Widths for every block size and register tiling of the CUDA kernel (4 values a thread for
// 700, 2000 and 4096: 192, 512 and 1024 threads; 32 and 64 values a thread of 256 beyond) and
// the plain loop past 16384.
TEST_P(FusedOps, AddRmsNormEqualsAddThenNorm) {
  const int64_t rows = 3;
  for (int64_t width : {700, 2000, 4096, 5000, 16384, 20000}) {
    auto x = random_values(rows * width, 1), delta = random_values(rows * width, 2);
    auto weight = random_values(width, 3);
    Tensor fused_x = upload(x, {rows, width}), plain_x = upload(x, {rows, width});
    Tensor d = upload(delta, {rows, width}), w = upload(weight, {width});
    Tensor fused_out = backend_->empty({rows, width}), plain_out = backend_->empty({rows, width});
    backend_->add_rms_norm(fused_x, d, fused_out, w, 1e-5f);
    backend_->add(plain_x, plain_x, d);
    backend_->rms_norm(plain_out, plain_x, w, 1e-5f);
    EXPECT_EQ(backend_->to_host(fused_x), backend_->to_host(plain_x)) << "width " << width;
    EXPECT_EQ(backend_->to_host(fused_out), backend_->to_host(plain_out)) << "width " << width;
  }
}

TEST_P(FusedOps, RopeAndCacheEqualsRopeThenKvWrite) {
  const int64_t batch = 2, n_tokens = 3, n_past = 4, capacity = 9, head_dim = 16;
  const int64_t q_heads = 4, kv_heads = 2, rows = batch * n_tokens;
  const int64_t q_width = q_heads * head_dim, kv_width = kv_heads * head_dim;
  auto q = random_values(rows * q_width, 4), k = random_values(rows * kv_width, 5);
  auto v = random_values(rows * kv_width, 6);
  auto cache = random_values(batch * capacity * kv_width, 7);
  std::vector<int32_t> positions;
  for (int64_t r = 0; r < rows; ++r)
    positions.push_back(static_cast<int32_t>(n_past + r % n_tokens));
  std::vector<float> inv_freq;
  for (int64_t i = 0; i < head_dim / 2; ++i)
    inv_freq.push_back(std::pow(10000.0f, -2.0f * i / head_dim));
  for (bool rotate : {true, false}) {
    std::span<const float> frequencies =
        rotate ? std::span<const float>(inv_freq) : std::span<const float>();
    Tensor fq = upload(q, {rows, q_width}), fk = upload(k, {rows, kv_width});
    Tensor pq = upload(q, {rows, q_width}), pk = upload(k, {rows, kv_width});
    Tensor values = upload(v, {rows, kv_width});
    Tensor fkc = upload(cache, {batch * capacity, kv_width}),
           fvc = upload(cache, {batch * capacity, kv_width});
    Tensor pkc = upload(cache, {batch * capacity, kv_width}),
           pvc = upload(cache, {batch * capacity, kv_width});
    backend_->rope_and_cache(fq, fk, values, fkc, fvc, head_dim, positions, frequencies, batch,
                             n_tokens, n_past);
    if (rotate) {
      backend_->rope(pq, head_dim, positions, inv_freq);
      backend_->rope(pk, head_dim, positions, inv_freq);
    }
    backend_->kv_write(pkc, pk, batch, n_tokens, n_past);
    backend_->kv_write(pvc, values, batch, n_tokens, n_past);
    EXPECT_EQ(backend_->to_host(fq), backend_->to_host(pq)) << "rotate " << rotate;
    EXPECT_EQ(backend_->to_host(fk), backend_->to_host(pk)) << "rotate " << rotate;
    EXPECT_EQ(backend_->to_host(fkc), backend_->to_host(pkc)) << "rotate " << rotate;
    EXPECT_EQ(backend_->to_host(fvc), backend_->to_host(pvc)) << "rotate " << rotate;
    // Rows outside the new tokens keep what the cache held.
    auto kept = backend_->to_host(fvc);
    EXPECT_EQ(kept[0], cache[0]);
    EXPECT_EQ(kept.back(), cache.back());
  }
}

// A weight as a checkpoint holds it: float32 or bf16 bytes.
HostTensor host_weight(const std::vector<float>& values, Shape shape, DType dtype) {
  auto bytes = std::make_shared<std::vector<std::byte>>(dtype_bytes(dtype, values.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::BF16) {
      const uint16_t bits = f32_to_bf16(values[i]);
      std::memcpy(bytes->data() + 2 * i, &bits, 2);
    } else {
      std::memcpy(bytes->data() + 4 * i, &values[i], 4);
    }
  }
  return HostTensor{"w", dtype, std::move(shape), *bytes, bytes};
}

// How far act(g) u may move when g and u are rounded to bf16 (a relative error of 2^-8 each, the
// activations' slopes below 1.2) after sums of products whose order may differ (2^-16 of
// sum |x w| covers float32 accumulation in any order at these sizes).
float product_rounding_bound(float g, float u, double g_reach, double u_reach,
                             Activation activation) {
  const float act = static_cast<float>(reference::activation(g, activation));
  const float dg = std::ldexp(std::fabs(g), -8) + std::ldexp(static_cast<float>(g_reach), -16);
  const float du = std::ldexp(std::fabs(u), -8) + std::ldexp(static_cast<float>(u_reach), -16);
  return 1.2f * dg * (std::fabs(u) + du) + std::fabs(act) * du + 1e-6f * std::fabs(act * u);
}

TEST_P(FusedOps, GatedMatmulEqualsTwoMatmulsThenGatedActivation) {
  const int64_t n = 300, k = 1024;  // k >= 1024: the GEMV may split rows over warps
  const auto gate_values = random_values(n * k, 8), up_values = random_values(n * k, 9);
  for (DType dtype : {DType::F32, DType::BF16}) {
    Tensor gate = backend_->upload_weight(host_weight(gate_values, {n, k}, dtype));
    Tensor up = backend_->upload_weight(host_weight(up_values, {n, k}, dtype));
    for (int64_t m : {1, 3, 7}) {  // 7 rows: a GEMM, through the composed ops
      const auto x_values = random_values(m * k, 10 + static_cast<uint32_t>(m));
      for (Activation activation : {Activation::Silu, Activation::GeluTanh}) {
        Tensor x = upload(x_values, {m, k});
        Tensor fused = backend_->empty({m, n}), plain = backend_->empty({m, n});
        Tensor plain_gate = backend_->empty({m, n}), plain_up = backend_->empty({m, n});
        backend_->gated_matmul(fused, x, gate, up, activation);
        backend_->matmul(plain_gate, x, gate, nullptr);
        backend_->matmul(plain_up, x, up, nullptr);
        backend_->gated_activation(plain, plain_gate, plain_up, activation);
        const auto got = backend_->to_host(fused), want = backend_->to_host(plain);
        if (dtype == DType::F32 || m <= 4) {  // float32 weights, or decoding's GEMV sizes
          EXPECT_EQ(got, want) << dtype_name(dtype) << " m=" << m;
          continue;
        }
        // With 16-bit weights and prompt sizes a backend may keep the products in the weights'
        // precision, as transformers' bf16 forward does (CUDA's prompt GEMMs do): equal, or
        // within that rounding's reach.
        const auto g = backend_->to_host(plain_gate), u = backend_->to_host(plain_up);
        const auto g_reach = testing::abs_product_sums(x_values, gate_values, k);
        const auto u_reach = testing::abs_product_sums(x_values, up_values, k);
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_NEAR(got[i], want[i],
                      product_rounding_bound(g[i], u[i], g_reach[i], u_reach[i], activation))
              << dtype_name(dtype) << " m=" << m << " element " << i << " gate " << g[i] << " up "
              << u[i] << (activation == Activation::Silu ? " silu" : " gelu_tanh");
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, FusedOps, ::testing::ValuesIn(testing::inference_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flow2
