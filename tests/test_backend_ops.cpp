// Every backend op against the slow reference implementations in reference_ops.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/quant.h"
#include "reference_ops.h"
#include "test_support.h"

namespace flow2 {
namespace {

using reference::Matrix;
using testing::max_abs_difference;
using testing::random_values;

class BackendOps : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason(GetParam()); !reason.empty()) GTEST_SKIP() << reason;
    backend_ = make_backend(GetParam());
  }
  Tensor upload(const Matrix& values, Shape shape) { return backend_->from_host(values, shape); }
  Matrix download(const Tensor& tensor) { return backend_->to_host(tensor); }
  void check_compact_weights(int64_t n, int64_t k);
  std::unique_ptr<Backend> backend_;
};

TEST_P(BackendOps, MatmulMatchesReference) {
  // 1-4 rows take the GEMV kernels on CUDA (k = 30: the unvectorized loop, one warp a row;
  // k = 2048 and 4096: a row split over 4 or 8 warps), more take a GEMM.
  const int64_t shapes[][3] = {{1, 64, 48}, {7, 100, 130},  {33, 17, 1},   {128, 256, 64},
                               {4, 30, 5},  {3, 1000, 300}, {2, 2048, 40}, {1, 4096, 7000}};
  uint64_t seed = 1;
  for (const auto& [m, k, n] : shapes) {
    for (bool with_bias : {false, true}) {
      Matrix x = random_values(m * k, seed++);
      Matrix w = random_values(n * k, seed++);
      Matrix bias = with_bias ? random_values(n, seed++) : Matrix{};
      Tensor tx = upload(x, {m, k}), tw = upload(w, {n, k}), out = backend_->empty({m, n});
      Tensor tb = with_bias ? upload(bias, {n}) : Tensor();
      backend_->matmul(out, tx, tw, with_bias ? &tb : nullptr);
      Matrix expected = reference::matmul(x, w, bias, m, k, n);
      EXPECT_LT(max_abs_difference(download(out), expected), 1e-5 * std::sqrt(double(k)))
          << m << "x" << k << "x" << n << " bias " << with_bias;
    }
  }
}

TEST_P(BackendOps, EmbeddingGathersAndAccumulates) {
  Matrix table = random_values(10 * 6, 3);
  std::vector<int32_t> ids = {3, 0, 9, 3};
  Tensor out = backend_->empty({4, 6});
  Tensor ttable = upload(table, {10, 6});
  backend_->embedding(out, ttable, ids, false);
  Matrix gathered = download(out);
  backend_->embedding(out, ttable, ids, true);
  Matrix doubled = download(out);
  for (size_t i = 0; i < ids.size(); ++i) {
    for (int j = 0; j < 6; ++j) {
      EXPECT_EQ(gathered[i * 6 + j], table[ids[i] * 6 + j]);
      EXPECT_FLOAT_EQ(doubled[i * 6 + j], 2 * table[ids[i] * 6 + j]);
    }
  }
}

// Widths of 48 and 576 (blocks of 32 and 160 threads on CUDA) and 4096 (1024 threads).
TEST_P(BackendOps, NormsMatchReference) {
  const int64_t rows = 5;
  for (int64_t width : {48, 576, 4096}) {
    Matrix x = random_values(rows * width, 4, 3.0f);
    Matrix weight = random_values(width, 5), bias = random_values(width, 6);
    Tensor tx = upload(x, {rows, width}), out = backend_->empty({rows, width});
    backend_->rms_norm(out, tx, upload(weight, {width}), 1e-5f);
    EXPECT_LT(max_abs_difference(download(out), reference::rms_norm(x, weight, width, 1e-5)), 1e-5)
        << "width " << width;
    backend_->layer_norm(out, tx, upload(weight, {width}), upload(bias, {width}), 1e-5f);
    EXPECT_LT(
        max_abs_difference(download(out), reference::layer_norm(x, weight, bias, width, 1e-5)),
        1e-5)
        << "width " << width;
  }
}

TEST_P(BackendOps, RopeMatchesReference) {
  const int64_t tokens = 6, heads = 3, head_dim = 16;
  Matrix x = random_values(tokens * heads * head_dim, 7);
  std::vector<int32_t> positions = {0, 1, 2, 17, 100, 4000};
  std::vector<float> inv_freq(head_dim / 2);
  for (int64_t i = 0; i < head_dim / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / head_dim);
  Tensor tx = upload(x, {tokens, heads * head_dim});
  backend_->rope(tx, head_dim, positions, inv_freq);
  // Angles up to 4000 rad lose ~2e-4 rad to the float32 product, as in transformers.
  EXPECT_LT(max_abs_difference(download(tx), reference::rope(x, head_dim, positions, inv_freq)),
            2e-3);
  Tensor near = upload(Matrix(x.begin(), x.begin() + 4 * heads * head_dim), {4, heads * head_dim});
  std::vector<int32_t> small_positions = {0, 1, 2, 17};
  backend_->rope(near, head_dim, small_positions, inv_freq);
  EXPECT_LT(max_abs_difference(download(near),
                               reference::rope(Matrix(x.begin(), x.begin() + 4 * heads * head_dim),
                                               head_dim, small_positions, inv_freq)),
            1e-5);
}

// Fills a cache through kv_write in two steps (the past, then the new tokens) and compares
// attention over it with the full-matrix reference.
void check_attention(Backend& backend, AttentionShape shape, uint64_t seed) {
  const int64_t total = shape.n_past + shape.n_tokens;
  const int64_t capacity = total + 3;  // spare rows must not be read
  const int64_t kv_width = shape.n_kv_heads * shape.head_dim;
  const int64_t q_width = shape.n_heads * shape.head_dim;
  Matrix keys = random_values(shape.batch * total * kv_width, seed);
  Matrix values = random_values(shape.batch * total * kv_width, seed + 1);
  Matrix q = random_values(shape.batch * shape.n_tokens * q_width, seed + 2);
  Tensor k_cache = backend.from_host(Matrix(shape.batch * capacity * kv_width, NAN),
                                     {shape.batch * capacity, kv_width});
  Tensor v_cache = backend.from_host(Matrix(shape.batch * capacity * kv_width, NAN),
                                     {shape.batch * capacity, kv_width});
  auto rows_of = [&](const Matrix& all, int64_t first, int64_t count) {
    Matrix part;
    for (int64_t b = 0; b < shape.batch; ++b) {
      auto start = all.begin() + (b * total + first) * kv_width;
      part.insert(part.end(), start, start + count * kv_width);
    }
    return backend.from_host(part, {shape.batch * count, kv_width});
  };
  if (shape.n_past > 0) {
    backend.kv_write(k_cache, rows_of(keys, 0, shape.n_past), shape.batch, shape.n_past, 0);
    backend.kv_write(v_cache, rows_of(values, 0, shape.n_past), shape.batch, shape.n_past, 0);
  }
  backend.kv_write(k_cache, rows_of(keys, shape.n_past, shape.n_tokens), shape.batch,
                   shape.n_tokens, shape.n_past);
  backend.kv_write(v_cache, rows_of(values, shape.n_past, shape.n_tokens), shape.batch,
                   shape.n_tokens, shape.n_past);
  Tensor out = backend.empty({shape.batch * shape.n_tokens, q_width});
  backend.attention(out, backend.from_host(q, {shape.batch * shape.n_tokens, q_width}), k_cache,
                    v_cache, shape);
  Matrix expected = reference::attention(q, keys, values, shape);
  EXPECT_LT(max_abs_difference(backend.to_host(out), expected), 1e-5)
      << "batch " << shape.batch << " tokens " << shape.n_tokens << " past " << shape.n_past
      << " window " << shape.sliding_window;
}

TEST_P(BackendOps, AttentionMatchesReference) {
  // batch, n_tokens, n_past, heads, kv heads, head_dim, scale, window
  check_attention(*backend_, {1, 5, 0, 4, 4, 8, 0.35f, 0}, 10);   // prefill, MHA
  check_attention(*backend_, {2, 3, 5, 4, 2, 8, 0.35f, 0}, 20);   // GQA, continuing a cache
  check_attention(*backend_, {2, 1, 9, 6, 1, 16, 0.25f, 0}, 30);  // decode step, MQA
  check_attention(*backend_, {1, 7, 4, 2, 2, 8, 0.5f, 4}, 40);    // sliding window
  check_attention(*backend_, {3, 1, 12, 2, 1, 8, 0.5f, 3}, 50);   // window while decoding
  // Shapes of real models: long caches (CUDA splits the keys over blocks), several key tiles
  // per query block, head dimensions up to 256.
  check_attention(*backend_, {1, 1, 700, 8, 2, 128, 0.088f, 0}, 60);
  check_attention(*backend_, {2, 40, 100, 4, 2, 64, 0.125f, 0}, 70);
  check_attention(*backend_, {1, 2, 300, 4, 4, 256, 0.0625f, 0}, 80);
  check_attention(*backend_, {2, 1, 400, 12, 4, 96, 0.1f, 100}, 90);
}

TEST_P(BackendOps, ActivationsMatchReference) {
  Matrix gate = random_values(200, 60, 3.0f), up = random_values(200, 61);
  for (Activation activation :
       {Activation::Silu, Activation::GeluTanh, Activation::GeluErf, Activation::Relu}) {
    Tensor tgate = upload(gate, {10, 20});
    Tensor out = backend_->empty({10, 20});
    backend_->gated_activation(out, tgate, upload(up, {10, 20}), activation);
    Matrix gated = download(out);
    backend_->activation(tgate, activation);
    Matrix plain = download(tgate);
    for (size_t i = 0; i < gate.size(); ++i) {
      double expected = reference::activation(gate[i], activation);
      EXPECT_NEAR(plain[i], expected, 1e-5 * (1 + std::abs(expected)));
      EXPECT_NEAR(gated[i], expected * up[i], 1e-5 * (1 + std::abs(expected * up[i])));
    }
  }
}

TEST_P(BackendOps, AddIsElementwise) {
  Matrix a = random_values(30, 70), b = random_values(30, 71);
  Tensor ta = upload(a, {5, 6});
  backend_->add(ta, ta, upload(b, {5, 6}));
  Matrix sum = download(ta);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_FLOAT_EQ(sum[i], a[i] + b[i]);
}

// Weights in every compact form give the products of their decoded values, through both the
// dot-product path (1-4 rows of x) and the tiled sgemm path; embeddings gather decoded rows.
TEST_P(BackendOps, CompactWeightsMatchTheirDecodedValues) {
  // The second shape is long enough for CUDA to split rows over warps with loads in flight.
  for (auto [n, k] : {std::pair<int64_t, int64_t>{70, 256}, {300, 8192}}) {
    check_compact_weights(n, k);
  }
}

void BackendOps::check_compact_weights(int64_t n, int64_t k) {
  Matrix source = random_values(n * k, 90, 0.5f);
  for (DType dtype :
       {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K}) {
    std::vector<std::byte> bytes(dtype_bytes(dtype, source.size()));
    if (is_quantized(dtype)) {
      quantize_blocks(dtype, source.data(), source.size(), bytes.data());
    } else {
      for (size_t i = 0; i < source.size(); ++i) {
        uint16_t bits = dtype == DType::F16 ? f32_to_f16(source[i]) : f32_to_bf16(source[i]);
        std::memcpy(bytes.data() + 2 * i, &bits, 2);
      }
    }
    HostTensor host{"w", dtype, {n, k}, bytes, nullptr};
    Matrix decoded = host.to_f32();
    Tensor weight = backend_->upload_weight(host);
    EXPECT_EQ(weight.dtype(), dtype) << "compact weights stay compact";
    // Tensor-core prompts round x (and decoded blocks) to 16 bits: a relative bound on the sum
    // of |x_i w_i| of each product.
    auto tensor_core_rounding = [&](const Matrix& x, int64_t m) {
      const double relative = testing::product_relative_error(GetParam(), true, m);
      double bound = 0.0;
      for (int64_t row = 0; row < m && relative > 0; ++row) {
        for (int64_t col = 0; col < n; ++col) {
          double magnitude = 0.0;
          for (int64_t j = 0; j < k; ++j) {
            magnitude += std::fabs(x[row * k + j] * decoded[col * k + j]);
          }
          bound = std::max(bound, relative * magnitude);
        }
      }
      return bound;
    };
    Matrix bias = random_values(n, 91);
    for (int64_t m : {1, 3, 40}) {
      Matrix x = random_values(m * k, 92 + m);
      Tensor out = backend_->empty({m, n});
      Tensor tb = upload(bias, {n});
      backend_->matmul(out, upload(x, {m, k}), weight, &tb);
      // Decoding a few rows reads quantized blocks with x rounded to int16 per block of 32:
      // each product may move by |w| * (half a step of x's block).
      double rounding = 0.0;
      if (is_quantized(dtype) && m <= 4) {
        for (int64_t row = 0; row < m; ++row) {
          for (int64_t col = 0; col < n; ++col) {
            double bound = 0.0;
            for (int64_t b = 0; b < k / 32; ++b) {
              float largest = 0.0f;
              for (int64_t j = 0; j < 32; ++j) {
                largest = std::max(largest, std::fabs(x[row * k + b * 32 + j]));
              }
              for (int64_t j = 0; j < 32; ++j) {
                bound += std::fabs(decoded[col * k + b * 32 + j]) * largest / 32767.0 / 2;
              }
            }
            rounding = std::max(rounding, bound);
          }
        }
      }
      EXPECT_LT(max_abs_difference(download(out), reference::matmul(x, decoded, bias, m, k, n)),
                1e-4 * std::sqrt(k / 256.0) + rounding + tensor_core_rounding(x, m))
          << dtype_name(dtype) << " m=" << m << " k=" << k;
    }
    std::vector<int32_t> ids = {69, 0, 7};
    Tensor rows = backend_->empty({3, k});
    backend_->embedding(rows, weight, ids, false);
    Matrix gathered = download(rows);
    // The same floats, but for a rounding step where the CPU build fuses d * q + m (Q4_1) and
    // a GPU kernel might not.
    const double ulp = GetParam() == "cpu" ? 0.0 : 1.2e-7;
    for (size_t i = 0; i < ids.size(); ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const float expected = decoded[ids[i] * k + j];
        ASSERT_LE(std::fabs(gathered[i * k + j] - expected), ulp * std::fabs(expected))
            << dtype_name(dtype);
      }
    }
  }
}

TEST_P(BackendOps, UploadedHalfPrecisionWeightsReadBackExactly) {
  Matrix values = random_values(24, 80);
  for (DType dtype : {DType::BF16, DType::F16}) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      bits[i] = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
    }
    HostTensor host{"w", dtype, {4, 6}, std::as_bytes(std::span(bits)), nullptr};
    Matrix uploaded = download(backend_->upload_weight(host));
    for (size_t i = 0; i < values.size(); ++i) {
      float expected = dtype == DType::BF16 ? bf16_to_f32(bits[i]) : f16_to_f32(bits[i]);
      EXPECT_EQ(uploaded[i], expected);
      EXPECT_NEAR(uploaded[i], values[i],
                  std::abs(values[i]) * (dtype == DType::BF16 ? 4e-3 : 5e-4));
    }
  }
}

// Instances named by backend (AllBackends/BackendOps.X/cuda): --gtest_filter='*BackendOps*cuda*'.
INSTANTIATE_TEST_SUITE_P(AllBackends, BackendOps,
                         ::testing::ValuesIn(testing::inference_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flow2
