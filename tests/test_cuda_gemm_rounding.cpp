// GEMMs (more than 4 rows of x) round x to bf16 once and let the next GEMM of the same x reuse
// that copy (Context::holds_rounded). These check that a reused copy is never stale: after an
// op rewrote x, after x's memory went to a new tensor, and that q, k, v-like runs of GEMMs on
// one x still match the CPU; and that ops which write the rounding of their output round it as
// the GEMM would. Built with the toolkit; skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/quant.h"
#include "test_support.h"

namespace flow2 {
namespace {

constexpr int64_t kRows = 16, kWidth = 256, kOutputs = 64;

HostTensor bf16_weight(uint64_t seed) {
  const std::vector<float> values =
      testing::random_values(static_cast<size_t>(kOutputs * kWidth), seed, 0.5f);
  auto bytes = std::make_shared<std::vector<std::byte>>(2 * values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t bits = f32_to_bf16(values[i]);
    std::memcpy(bytes->data() + 2 * i, &bits, 2);
  }
  HostTensor tensor{"w", DType::BF16, {kOutputs, kWidth}, *bytes, nullptr};
  tensor.owner = bytes;
  return tensor;
}

// The products of the sequence on one backend: two GEMMs of x, x doubled in place, a GEMM of
// the doubled x, then x's memory freed and a new x (fresh values) multiplied; then GEMMs of the
// outputs of ops that write their rounding themselves (add_rms_norm, gated_activation), once
// right after them and once after another op changed that output.
struct Products {
  std::vector<std::vector<float>> products;
  std::vector<double> abs_sums;  // largest_abs_product_sum of each product's x and weight
};

Products run_sequence(Backend& backend) {
  const HostTensor first_host = bf16_weight(1), second_host = bf16_weight(2);
  const Tensor first = backend.upload_weight(first_host);
  const Tensor second = backend.upload_weight(second_host);
  const std::vector<float> first_values = first_host.to_f32(), second_values = second_host.to_f32();
  Products run;
  auto record = [&](const Tensor& x, const Tensor& out, const std::vector<float>& weight) {
    run.products.push_back(backend.to_host(out));
    run.abs_sums.push_back(testing::largest_abs_product_sum(backend.to_host(x), weight, kWidth));
  };
  auto product = [&](const Tensor& x, const Tensor& weight) {
    Tensor out = backend.empty({kRows, kOutputs});
    backend.matmul(out, x, weight, nullptr);
    record(x, out, &weight == &first ? first_values : second_values);
  };
  const size_t count = static_cast<size_t>(kRows * kWidth);
  {
    Tensor x = backend.from_host(testing::random_values(count, 3), {kRows, kWidth});
    Tensor q = backend.empty({kRows, kOutputs}), k = backend.empty({kRows, kOutputs});
    backend.matmul(q, x, first, nullptr);  // back to back, as a layer's projections run
    backend.matmul(k, x, second, nullptr);
    record(x, q, first_values);
    record(x, k, second_values);
    backend.add(x, x, x);
    product(x, first);
  }
  Tensor replacement = backend.from_host(testing::random_values(count, 4), {kRows, kWidth});
  product(replacement, second);

  Tensor residual = backend.from_host(testing::random_values(count, 5), {kRows, kWidth});
  const Tensor norm_weight =
      backend.from_host(testing::random_values(static_cast<size_t>(kWidth), 6), {kWidth});
  Tensor normed = backend.empty({kRows, kWidth});
  backend.add_rms_norm(residual, replacement, normed, norm_weight, 1e-5f);
  product(normed, first);
  backend.add_rms_norm(residual, replacement, normed, norm_weight, 1e-5f);
  backend.add(normed, normed, replacement);
  product(normed, second);
  const Tensor gate = backend.from_host(testing::random_values(count, 7), {kRows, kWidth});
  Tensor gated = backend.empty({kRows, kWidth});
  backend.gated_activation(gated, gate, replacement, Activation::Silu);
  product(gated, first);
  return run;
}

TEST(CudaGemmRounding, ReusedRoundingIsNeverStale) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto cpu = make_cpu_backend();
  auto cuda = make_backend("cuda");
  const Products expected = run_sequence(*cpu);
  const Products actual = run_sequence(*cuda);
  ASSERT_EQ(actual.products.size(), expected.products.size());
  // x rounds to bf16 (2^-9 relative; float32 sums add less): a product moves by at most 2^-8 of
  // sum |x w|.
  std::vector<double> bound;
  for (double sum : expected.abs_sums) bound.push_back(std::ldexp(sum, -8));
  for (size_t i = 0; i < expected.products.size(); ++i) {
    EXPECT_LE(testing::max_abs_difference(actual.products[i], expected.products[i]), bound[i])
        << "product " << i;
  }
  // A stale copy would be caught: product 2 from the undoubled x is product 0, and product 3
  // from the doubled x is twice product 1, both far outside the bound.
  std::vector<float> doubled = expected.products[1];
  for (float& value : doubled) value *= 2.0f;
  EXPECT_GT(testing::max_abs_difference(expected.products[2], expected.products[0]), 4 * bound[2]);
  EXPECT_GT(testing::max_abs_difference(expected.products[3], doubled), 4 * bound[3]);
}

// The roundings that ops write for the next GEMM (add_rms_norm, gated_activation, prompt
// attention) must be the GEMM's own, bit for bit: a GEMM right after the op (which uses the
// op's rounding) equals the same GEMM after an unrelated op dropped the record (which rounds x
// itself).
TEST(CudaGemmRounding, OpsRoundTheirOutputAsTheGemmWould) {
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = make_backend("cuda");
  const Tensor weight = backend->upload_weight(bf16_weight(8));  // a 16-bit model from here on
  const size_t count = static_cast<size_t>(kRows * kWidth);
  Tensor unrelated = backend->from_host(std::vector<float>(4, 1.0f), {1, 4});
  auto compare = [&](const Tensor& x, const char* op) {
    Tensor reused = backend->empty({kRows, kOutputs}), fresh = backend->empty({kRows, kOutputs});
    backend->matmul(reused, x, weight, nullptr);
    backend->add(unrelated, unrelated, unrelated);  // drops the record
    backend->matmul(fresh, x, weight, nullptr);
    EXPECT_EQ(backend->to_host(reused), backend->to_host(fresh)) << op;
  };
  Tensor residual = backend->from_host(testing::random_values(count, 11), {kRows, kWidth});
  const Tensor delta = backend->from_host(testing::random_values(count, 12), {kRows, kWidth});
  const Tensor norm_weight =
      backend->from_host(testing::random_values(static_cast<size_t>(kWidth), 13), {kWidth});
  Tensor normed = backend->empty({kRows, kWidth});
  backend->add_rms_norm(residual, delta, normed, norm_weight, 1e-5f);
  compare(normed, "add_rms_norm");

  Tensor gated = backend->empty({kRows, kWidth});
  backend->gated_activation(gated, residual, delta, Activation::Silu);
  compare(gated, "gated_activation");

  // Prompt attention (16 or more queries: the tensor-core kernel) over a bf16 cache; its output
  // [tokens, heads * head_dim] is the GEMM's x. 2 heads of 128 = kWidth.
  const AttentionShape shape{1, kRows, 0, 2, 2, 128, 0.088f, 0};
  const Tensor q = backend->from_host(testing::random_values(count, 14), {kRows, kWidth});
  Tensor keys = backend->make_cache_tensor({kRows, kWidth});
  Tensor values = backend->make_cache_tensor({kRows, kWidth});
  backend->kv_write(keys, delta, 1, kRows, 0);
  backend->kv_write(values, residual, 1, kRows, 0);
  Tensor attended = backend->empty({kRows, kWidth});
  backend->attention(attended, q, keys, values, shape);
  compare(attended, "attention");
}

}  // namespace
}  // namespace flow2
