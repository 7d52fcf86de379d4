// Inside a decoding step, ops that write the x of 4-bit GEMVs (add_rms_norm, rms_norm,
// gated_matmul, decode attention; one row) also stage it as int16 groups (Context::set_x16_groups),
// and the GEMVs that follow read that staging instead of quantizing x in every block. The staging
// must be the one the GEMV would make, bit for bit (outside a step nothing is staged: the same ops
// compare there), and never be read for an x that changed since; with many rows (the output head)
// the GEMV keeps its float path. Built with the toolkit; skips without a GPU.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend_list.h"
#include "cuda_against_cpu.h"
#include "flow2/backend.h"
#include "random_weight.h"
#include "test_support.h"

namespace flow2 {
namespace {

using Matrix = std::vector<float>;
using testing::product_bound;
using testing::random_weight;

const DType kFourBitFormats[] = {DType::Q4_0, DType::Q4_1, DType::Q4_A64, DType::Q4_K};

class CudaX16Groups : public testing::CudaAgainstCpu {
 protected:
  // What `ops` (which return the tensors to read) compute as a decoding step, run twice (the
  // first step may grow the step arena the stagings come from), and outside a step.
  struct Runs {
    Matrix stepped, plain;
    bool staged = false;  // the second step staged x
  };
  template <typename Ops>
  Runs run(Ops&& ops) {
    cuda::Context& context = dynamic_cast<CudaBackend&>(*cuda_).context();
    auto read = [&](const std::vector<Tensor>& outs) {
      Matrix values;
      for (const Tensor& out : outs) {
        const Matrix part = cuda_->to_host(out);
        values.insert(values.end(), part.begin(), part.end());
      }
      return values;
    };
    Runs runs;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const int64_t before = context.x16_stagings();
      cuda_->begin_step();
      const std::vector<Tensor> outs = ops();
      cuda_->end_step();
      runs.stepped = read(outs);
      runs.staged = context.x16_stagings() > before;
    }
    runs.plain = read(ops());
    return runs;
  }
  // out = x W^T through matmul.
  Tensor product(const Tensor& x, const Tensor& weight) {
    Tensor out = cuda_->empty({x.rows(), weight.rows()});
    cuda_->matmul(out, x, weight, nullptr);
    return out;
  }
  // A fresh residual stream (add_rms_norm writes it): values + 0.
  Tensor residual_copy(const Tensor& values) {
    Tensor copy = cuda_->empty(values.shape());
    cuda_->add(copy, values, zeros_);
    return copy;
  }

  Tensor zeros_;
};

// Every GEMV form right after a norm (which stages its output) equals the same GEMV outside a
// step (whose blocks quantize x themselves): matmul, shared_input_matmul, gated_matmul and
// qkv_rope_cache after add_rms_norm, and matmul after rms_norm. Rows of 128 (one warp per row),
// 640 (the norm's last pass half full), 4096 and 14336 (an 8B model's).
TEST_F(CudaX16Groups, NormsStageTheirOutputAsTheGemvWould) {
  for (DType dtype : kFourBitFormats) {
    for (int64_t k : {128, 640, 4096, 14336}) {
      if (dtype == DType::Q4_K && k % 256 != 0) continue;  // Q4_K blocks hold 256 values
      const std::string what = fmt::format("{} k={}", dtype_name(dtype), k);
      const Tensor first = cuda_->upload_weight(random_weight(dtype, 128, k, 1));
      const Tensor second = cuda_->upload_weight(random_weight(dtype, 64, k, 2));
      const Tensor third = cuda_->upload_weight(random_weight(dtype, 64, k, 3));
      ASSERT_EQ(first.dtype(), dtype) << what;
      zeros_ = cuda_->from_host(Matrix(k, 0.0f), {1, k});
      const Tensor residual = cuda_->from_host(testing::random_values(k, 4), {1, k});
      const Tensor delta = cuda_->from_host(testing::random_values(k, 5), {1, k});
      const Tensor scale = cuda_->from_host(testing::random_values(k, 6), {k});
      auto normed = [&] {
        Tensor stream = residual_copy(residual);
        Tensor out = cuda_->empty({1, k});
        cuda_->add_rms_norm(stream, delta, out, scale, 1e-5f);
        return out;
      };

      Runs runs = run([&] { return std::vector<Tensor>{product(normed(), first)}; });
      EXPECT_TRUE(runs.staged) << what << " matmul";
      EXPECT_EQ(runs.stepped, runs.plain) << what << " matmul";

      runs = run([&] {
        Tensor a = cuda_->empty({1, 128}), b = cuda_->empty({1, 64});
        Tensor* const outs[] = {&a, &b};
        const Tensor* const weights[] = {&first, &second};
        const Tensor* const biases[] = {nullptr, nullptr};
        cuda_->shared_input_matmul(outs, normed(), weights, biases);
        return std::vector<Tensor>{a, b};
      });
      EXPECT_TRUE(runs.staged) << what << " shared_input_matmul";
      EXPECT_EQ(runs.stepped, runs.plain) << what << " shared_input_matmul";

      runs = run([&] {
        Tensor gated = cuda_->empty({1, 64});
        cuda_->gated_matmul(gated, normed(), second, third, Activation::Silu);
        return std::vector<Tensor>{gated};
      });
      EXPECT_TRUE(runs.staged) << what << " gated_matmul";
      EXPECT_EQ(runs.stepped, runs.plain) << what << " gated_matmul";

      runs = run([&] {
        const int64_t head_dim = 64;
        Tensor q = cuda_->empty({1, 128}), kp = cuda_->empty({1, 64}), v = cuda_->empty({1, 64});
        Tensor keys = cuda_->make_cache_tensor({2, 64}), values = cuda_->make_cache_tensor({2, 64});
        const Tensor* const weights[] = {&first, &second, &third};
        const Tensor* const biases[] = {nullptr, nullptr, nullptr};
        const std::vector<int32_t> positions = {1};
        const std::vector<float> inv_freq(head_dim / 2, 0.25f);
        cuda_->qkv_rope_cache(q, kp, v, normed(), weights, biases, keys, values, head_dim,
                              positions, inv_freq, 1, 1, 1);
        return std::vector<Tensor>{q, kp, v};
      });
      EXPECT_TRUE(runs.staged) << what << " qkv_rope_cache";
      EXPECT_EQ(runs.stepped, runs.plain) << what << " qkv_rope_cache";

      runs = run([&] {
        Tensor out = cuda_->empty({1, k});
        cuda_->rms_norm(out, residual, scale, 1e-5f);
        return std::vector<Tensor>{product(out, first)};
      });
      EXPECT_TRUE(runs.staged) << what << " rms_norm";
      EXPECT_EQ(runs.stepped, runs.plain) << what << " rms_norm";
    }
  }
}

// gated_matmul stages its output for the product that follows (a feed-forward's down
// projection), for inner widths of 128, 640, 4096 and 14336 (an 8B model's).
TEST_F(CudaX16Groups, GatedMatmulStagesItsOutputAsTheGemvWould) {
  const int64_t k = 256;
  zeros_ = cuda_->from_host(Matrix(k, 0.0f), {1, k});
  for (DType dtype : kFourBitFormats) {
    for (int64_t inner : {128, 640, 4096, 14336}) {
      if (dtype == DType::Q4_K && inner % 256 != 0) continue;  // Q4_K blocks hold 256 values
      const std::string what = fmt::format("{} inner={}", dtype_name(dtype), inner);
      const Tensor gate = cuda_->upload_weight(random_weight(dtype, inner, k, 21));
      const Tensor up = cuda_->upload_weight(random_weight(dtype, inner, k, 22));
      const Tensor down = cuda_->upload_weight(random_weight(dtype, 72, inner, 23));
      const Tensor x = cuda_->from_host(testing::random_values(k, 24), {1, k});
      const Runs runs = run([&] {
        Tensor hidden = cuda_->empty({1, inner});
        cuda_->gated_matmul(hidden, x, gate, up, Activation::Silu);
        return std::vector<Tensor>{hidden, product(hidden, down)};
      });
      EXPECT_TRUE(runs.staged) << what;
      EXPECT_EQ(runs.stepped, runs.plain) << what;
    }
  }
}

// Decode attention stages its output for the o projection (one sequence): the products equal
// those outside a step, for heads of 128 (an 8B model's, at one split of the keys and at
// several, whose last block writes the output) and of 64.
TEST_F(CudaX16Groups, DecodeAttentionStagesItsOutputAsTheGemvWould) {
  struct Case {
    int64_t head_dim, n_heads, n_kv_heads, n_past;
  };
  for (const Case c : {Case{128, 32, 8, 20}, Case{128, 32, 8, 299}, Case{64, 4, 1, 5}}) {
    const int64_t width = c.n_heads * c.head_dim, kv_width = c.n_kv_heads * c.head_dim;
    // The cache holds exactly the keys attended to: the splits that follow the capacity inside
    // a step are those that follow the keys outside one, so both sum in the same order.
    const int64_t capacity = c.n_past + 1;
    AttentionShape shape;
    shape.n_past = c.n_past;
    shape.n_heads = c.n_heads;
    shape.n_kv_heads = c.n_kv_heads;
    shape.head_dim = c.head_dim;
    shape.scale = 0.125f;
    auto cache = [&](uint32_t seed) {
      Tensor stored = cuda_->make_cache_tensor({capacity, kv_width});
      const Tensor rows =
          cuda_->from_host(testing::random_values(static_cast<size_t>(capacity * kv_width), seed),
                           {capacity, kv_width});
      cuda_->kv_write(stored, rows, 1, capacity, 0);
      return stored;
    };
    const Tensor keys = cache(31), values = cache(32);
    const Tensor q =
        cuda_->from_host(testing::random_values(static_cast<size_t>(width), 33), {1, width});
    for (DType dtype : kFourBitFormats) {
      const std::string what =
          fmt::format("{} head_dim={} n_past={}", dtype_name(dtype), c.head_dim, c.n_past);
      const Tensor weight = cuda_->upload_weight(random_weight(dtype, 96, width, 34));
      const Runs runs = run([&] {
        Tensor attended = cuda_->empty({1, width});
        cuda_->attention(attended, q, keys, values, shape);
        return std::vector<Tensor>{attended, product(attended, weight)};
      });
      EXPECT_TRUE(runs.staged) << what;
      EXPECT_EQ(runs.stepped, runs.plain) << what;
    }
  }
}

// A staging is never read for another x: not after an op rewrote the norm's (or the gated
// product's) output, and not for a different tensor of the same shape. The products must then
// be those of the new x; a stale staging would give the old product, far outside the bound.
TEST_F(CudaX16Groups, StagingIsNeverStale) {
  const int64_t k = 512, n = 64;
  zeros_ = cuda_->from_host(Matrix(k, 0.0f), {1, k});
  const HostTensor host = random_weight(DType::Q4_0, n, k, 7);
  const Matrix decoded = host.to_f32();
  const Tensor weight = cuda_->upload_weight(host);
  const Tensor cpu_weight = cpu_->upload_weight(host);
  const Tensor gate = cuda_->upload_weight(random_weight(DType::Q4_0, k, k, 15));
  const Tensor residual = cuda_->from_host(testing::random_values(k, 8), {1, k});
  const Tensor delta = cuda_->from_host(testing::random_values(k, 9), {1, k});
  const Tensor scale = cuda_->from_host(testing::random_values(k, 10), {k});
  const Tensor other = cuda_->from_host(testing::random_values(k, 11), {1, k});
  // The CPU's product of x's values and its bound, and the CUDA product's distance from it.
  auto check = [&](const Matrix& x, const Matrix& product, const char* what) {
    Tensor out = cpu_->empty({1, n});
    cpu_->matmul(out, cpu_->from_host(x, {1, k}), cpu_weight, nullptr);
    const double bound = product_bound(x, decoded, 1, n, k);
    EXPECT_LT(testing::max_abs_difference(product, cpu_->to_host(out)), bound) << what;
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    cuda_->begin_step();
    Tensor stream = residual_copy(residual);
    Tensor normed = cuda_->empty({1, k});
    cuda_->add_rms_norm(stream, delta, normed, scale, 1e-5f);
    cuda_->add(normed, normed, delta);  // rewrites the norm's output
    const Tensor after_norm = product(normed, weight);
    Tensor hidden = cuda_->empty({1, k});
    cuda_->gated_matmul(hidden, normed, gate, gate, Activation::Silu);
    cuda_->add(hidden, hidden, delta);  // rewrites the gated product's output
    const Tensor after_gated = product(hidden, weight);
    Tensor renormed = cuda_->empty({1, k});
    cuda_->add_rms_norm(stream, delta, renormed, scale, 1e-5f);
    const Tensor of_other = product(other, weight);  // right after the norm, another x
    cuda_->end_step();
    check(cuda_->to_host(normed), cuda_->to_host(after_norm), "norm output rewritten");
    check(cuda_->to_host(hidden), cuda_->to_host(after_gated), "gated output rewritten");
    check(cuda_->to_host(other), cuda_->to_host(of_other), "another x");
  }
}

// More rows than the integer path pays for (an output head: slower there even from a staging):
// the float path with or without a staging, the same results.
TEST_F(CudaX16Groups, ManyRowsKeepTheFloatPath) {
  const int64_t k = 256, n = 33000;
  for (DType dtype : {DType::Q4_0, DType::Q4_K}) {
    const Tensor weight = cuda_->upload_weight(random_weight(dtype, n, k, 12));
    const Tensor x = cuda_->from_host(testing::random_values(k, 13), {1, k});
    const Tensor scale = cuda_->from_host(testing::random_values(k, 14), {k});
    const Runs runs = run([&] {
      Tensor normed = cuda_->empty({1, k});
      cuda_->rms_norm(normed, x, scale, 1e-5f);
      return std::vector<Tensor>{product(normed, weight)};
    });
    EXPECT_TRUE(runs.staged) << dtype_name(dtype);
    EXPECT_EQ(runs.stepped, runs.plain) << dtype_name(dtype);
  }
}

}  // namespace
}  // namespace flow2
