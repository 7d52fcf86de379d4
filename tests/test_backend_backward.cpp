// The backward ops of every backend against central differences of the double-precision
// reference forward ops (reference_ops.cpp): for a random upstream gradient g, the op's input
// gradient must equal d(g . forward(x)) / dx.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "backend_list.h"
#include "flow2/backend.h"
#include "flow2/quant.h"
#include "reference_ops.h"
#include "test_support.h"

namespace flow2 {
namespace {

using reference::Matrix;
using testing::random_values;

// d(g . f(x)) / dx by central differences of f in double precision.
Matrix numeric_gradient(const std::function<Matrix(const Matrix&)>& f, const Matrix& x,
                        const Matrix& g) {
  Matrix result(x.size());
  const double h = 1e-2;
  for (size_t i = 0; i < x.size(); ++i) {
    Matrix plus = x, minus = x;
    plus[i] += static_cast<float>(h);
    minus[i] -= static_cast<float>(h);
    const double step = double(plus[i]) - double(minus[i]);
    Matrix a = f(plus), b = f(minus);
    double sum = 0.0;
    for (size_t j = 0; j < g.size(); ++j) sum += double(g[j]) * (double(a[j]) - double(b[j]));
    result[i] = static_cast<float>(sum / step);
  }
  return result;
}

double relative_error(const Matrix& actual, const Matrix& expected) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    diff += (double(actual[i]) - expected[i]) * (double(actual[i]) - expected[i]);
    norm += double(expected[i]) * expected[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

class BackendBackward : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { backend_ = make_backend(GetParam()); }
  Tensor upload(const Matrix& values, Shape shape) { return backend_->from_host(values, shape); }
  Matrix download(const Tensor& tensor) { return backend_->to_host(tensor); }
  std::unique_ptr<Backend> backend_;
};

TEST_P(BackendBackward, MatmulInputGradForEveryWeightDtype) {
  const int64_t m = 37, n = 70, k = 64;
  Matrix dy = random_values(m * n, 1), w = random_values(n * k, 2);
  for (DType dtype : {DType::F32, DType::Q8_0, DType::Q4_1, DType::F16}) {
    // The weight as stored, and its decoded values for the reference.
    Tensor weight = upload(w, {n, k});
    Matrix decoded = w;
    std::vector<std::byte> bytes;
    if (dtype != DType::F32) {
      bytes.resize(dtype_bytes(dtype, w.size()));
      if (dtype == DType::F16) {
        for (size_t i = 0; i < w.size(); ++i) {
          reinterpret_cast<uint16_t*>(bytes.data())[i] = f32_to_f16(w[i]);
        }
      } else {
        quantize_blocks(dtype, w.data(), w.size(), bytes.data());
      }
      convert_to_f32(dtype, bytes.data(), w.size(), decoded.data());
      weight = backend_->upload_weight(HostTensor{"w", dtype, {n, k}, bytes, nullptr});
    }
    Matrix expected(m * k, 0.0f);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < k; ++c) {
        double sum = 0.0;
        for (int64_t j = 0; j < n; ++j) sum += double(dy[r * n + j]) * decoded[j * k + c];
        expected[r * k + c] = static_cast<float>(sum);
      }
    }
    Tensor dx = upload(Matrix(m * k, 1.0f), {m, k});
    backend_->matmul_input_grad(dx, upload(dy, {m, n}), weight, false);
    EXPECT_LT(relative_error(download(dx), expected), 1e-6) << dtype_name(dtype);
    backend_->matmul_input_grad(dx, upload(dy, {m, n}), weight, true);
    for (float& e : expected) e *= 2;
    EXPECT_LT(relative_error(download(dx), expected), 1e-6) << dtype_name(dtype);
  }
}

TEST_P(BackendBackward, NormsMatchFiniteDifferences) {
  const int64_t rows = 3, width = 40;
  Matrix x = random_values(rows * width, 3, 2.0f), g = random_values(rows * width, 4);
  Matrix weight = random_values(width, 5), bias = random_values(width, 6);
  Matrix start = random_values(rows * width, 7);  // backward adds to what dx holds
  auto check = [&](bool layer, const Matrix& expected_delta) {
    Tensor dx = upload(start, {rows, width});
    if (layer) {
      backend_->layer_norm_backward(dx, upload(g, {rows, width}), upload(x, {rows, width}),
                                    upload(weight, {width}), 1e-5f);
    } else {
      backend_->rms_norm_backward(dx, upload(g, {rows, width}), upload(x, {rows, width}),
                                  upload(weight, {width}), 1e-5f);
    }
    Matrix delta = download(dx);
    for (size_t i = 0; i < delta.size(); ++i) delta[i] -= start[i];
    EXPECT_LT(relative_error(delta, expected_delta), 1e-3) << (layer ? "layer_norm" : "rms_norm");
  };
  check(false,
        numeric_gradient(
            [&](const Matrix& v) { return reference::rms_norm(v, weight, width, 1e-5); }, x, g));
  check(true,
        numeric_gradient(
            [&](const Matrix& v) { return reference::layer_norm(v, weight, bias, width, 1e-5); }, x,
            g));
}

TEST_P(BackendBackward, ActivationsMatchFiniteDifferences) {
  const int64_t count = 64;
  Matrix gate = random_values(count, 8, 2.0f), up = random_values(count, 9),
         g = random_values(count, 10);
  for (Activation act : {Activation::Silu, Activation::GeluTanh, Activation::GeluErf}) {
    auto gated = [&](const Matrix& gv, const Matrix& uv) {
      Matrix out(count);
      for (int64_t i = 0; i < count; ++i) out[i] = reference::activation(gv[i], act) * uv[i];
      return out;
    };
    Tensor d_gate = backend_->empty({count}), d_up = backend_->empty({count});
    backend_->gated_activation_backward(d_gate, d_up, upload(g, {count}), upload(gate, {count}),
                                        upload(up, {count}), act);
    Matrix expected_gate = numeric_gradient([&](const Matrix& v) { return gated(v, up); }, gate, g);
    Matrix expected_up = numeric_gradient([&](const Matrix& v) { return gated(gate, v); }, up, g);
    EXPECT_LT(relative_error(download(d_gate), expected_gate), 1e-4);
    EXPECT_LT(relative_error(download(d_up), expected_up), 1e-4);
    Tensor dx = upload(g, {count});
    backend_->activation_backward(dx, dx, upload(gate, {count}), act);
    Matrix ones(count, 1.0f);
    EXPECT_LT(
        relative_error(download(dx),
                       numeric_gradient([&](const Matrix& v) { return gated(v, ones); }, gate, g)),
        1e-4);
  }
}

TEST_P(BackendBackward, RopeWithNegatedPositionsIsItsBackward) {
  const int64_t tokens = 5, head_dim = 8;
  Matrix x = random_values(tokens * 2 * head_dim, 11), g = random_values(x.size(), 12);
  std::vector<int32_t> positions = {0, 3, 7, 100, 2000}, negated;
  for (int32_t p : positions) negated.push_back(-p);
  std::vector<float> inv_freq = {1.0f, 0.3f, 0.05f, 0.001f};
  Tensor dx = upload(g, {tokens, 2 * head_dim});
  backend_->rope(dx, head_dim, negated, inv_freq);
  Matrix expected = numeric_gradient(
      [&](const Matrix& v) { return reference::rope(v, head_dim, positions, inv_freq); }, x, g);
  EXPECT_LT(relative_error(download(dx), expected), 1e-4);
}

TEST_P(BackendBackward, SegmentAttentionMatchesReferenceAndFiniteDifferences) {
  // Two rows of 7 tokens; row 0 holds two packed segments, row 1 one segment then padding.
  const int64_t batch = 2, tokens = 7, heads = 4, kv_heads = 2, dim = 4;
  const std::vector<int32_t> segments = {1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0};
  AttentionShape shape{batch, tokens, 0, heads, kv_heads, dim, 0.5f, 0};
  Matrix q = random_values(batch * tokens * heads * dim, 13);
  Matrix k = random_values(batch * tokens * kv_heads * dim, 14);
  Matrix v = random_values(k.size(), 15);
  Matrix g = random_values(q.size(), 16);
  // The reference: each segment on its own, as a sequence of the reference attention.
  auto forward = [&](const Matrix& qv, const Matrix& kv, const Matrix& vv) {
    Matrix out(qv.size());
    for (int64_t i = 0; i < batch * tokens;) {
      int64_t end = i;
      while (end < batch * tokens && segments[end] == segments[i] && end / tokens == i / tokens) {
        ++end;
      }
      AttentionShape part = shape;
      part.batch = 1;
      part.n_tokens = end - i;
      const int64_t qw = heads * dim, kw = kv_heads * dim;
      Matrix r = reference::attention(Matrix(qv.begin() + i * qw, qv.begin() + end * qw),
                                      Matrix(kv.begin() + i * kw, kv.begin() + end * kw),
                                      Matrix(vv.begin() + i * kw, vv.begin() + end * kw), part);
      std::copy(r.begin(), r.end(), out.begin() + i * qw);
      i = end;
    }
    return out;
  };
  SegmentAttention attention{shape, segments};
  Tensor tq = upload(q, {batch * tokens, heads * dim});
  Tensor tk = upload(k, {batch * tokens, kv_heads * dim});
  Tensor tv = upload(v, {batch * tokens, kv_heads * dim});
  Tensor out = backend_->empty({batch * tokens, heads * dim});
  Tensor lse = backend_->empty({batch * tokens, heads});
  backend_->segment_attention(out, lse, tq, tk, tv, attention);
  EXPECT_LT(relative_error(download(out), forward(q, k, v)), 1e-6);

  Tensor dq = backend_->empty(tq.shape()), dk = backend_->empty(tk.shape()),
         dv = backend_->empty(tv.shape());
  backend_->segment_attention_backward(dq, dk, dv, upload(g, tq.shape()), tq, tk, tv, out, lse,
                                       attention);
  EXPECT_LT(
      relative_error(download(dq),
                     numeric_gradient([&](const Matrix& x) { return forward(x, k, v); }, q, g)),
      1e-4);
  EXPECT_LT(
      relative_error(download(dk),
                     numeric_gradient([&](const Matrix& x) { return forward(q, x, v); }, k, g)),
      1e-4);
  EXPECT_LT(
      relative_error(download(dv),
                     numeric_gradient([&](const Matrix& x) { return forward(q, k, x); }, v, g)),
      1e-4);
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendBackward,
                         ::testing::ValuesIn(testing::available_backends()));

}  // namespace
}  // namespace flow2
