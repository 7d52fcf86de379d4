#include "reference_ops.h"

#include <cmath>
#include <limits>

namespace flow2::reference {

Matrix matmul(const Matrix& x, const Matrix& w, const Matrix& bias, int64_t m, int64_t k,
              int64_t n) {
  Matrix out(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias.empty() ? 0.0 : bias[j];
      for (int64_t p = 0; p < k; ++p) sum += static_cast<double>(x[i * k + p]) * w[j * k + p];
      out[i * n + j] = static_cast<float>(sum);
    }
  }
  return out;
}

Matrix rms_norm(const Matrix& x, const Matrix& weight, int64_t width, double eps) {
  Matrix out(x.size());
  for (size_t row = 0; row < x.size() / width; ++row) {
    double mean_square = 0;
    for (int64_t j = 0; j < width; ++j) mean_square += std::pow(x[row * width + j], 2) / width;
    for (int64_t j = 0; j < width; ++j) {
      out[row * width + j] =
          static_cast<float>(weight[j] * x[row * width + j] / std::sqrt(mean_square + eps));
    }
  }
  return out;
}

Matrix layer_norm(const Matrix& x, const Matrix& weight, const Matrix& bias, int64_t width,
                  double eps) {
  Matrix out(x.size());
  for (size_t row = 0; row < x.size() / width; ++row) {
    double mean = 0, variance = 0;
    for (int64_t j = 0; j < width; ++j) mean += x[row * width + j] / static_cast<double>(width);
    for (int64_t j = 0; j < width; ++j) {
      variance += std::pow(x[row * width + j] - mean, 2) / static_cast<double>(width);
    }
    for (int64_t j = 0; j < width; ++j) {
      double normalized = (x[row * width + j] - mean) / std::sqrt(variance + eps);
      out[row * width + j] = static_cast<float>(normalized * weight[j] + bias[j]);
    }
  }
  return out;
}

Matrix rope(const Matrix& x, int64_t head_dim, const std::vector<int32_t>& positions,
            const std::vector<float>& inv_freq) {
  Matrix out(x);
  const int64_t width = static_cast<int64_t>(x.size() / positions.size());
  const int64_t half = head_dim / 2;
  for (size_t row = 0; row < positions.size(); ++row) {
    for (int64_t head = 0; head < width / head_dim; ++head) {
      for (int64_t i = 0; i < half; ++i) {
        double angle = static_cast<double>(positions[row]) * inv_freq[i];
        size_t a = row * width + head * head_dim + i;
        size_t b = a + half;
        // (x_a + i x_b) * e^{i angle}
        out[a] = static_cast<float>(x[a] * std::cos(angle) - x[b] * std::sin(angle));
        out[b] = static_cast<float>(x[b] * std::cos(angle) + x[a] * std::sin(angle));
      }
    }
  }
  return out;
}

Matrix attention(const Matrix& q, const Matrix& keys, const Matrix& values,
                 const AttentionShape& s) {
  const int64_t total = s.n_past + s.n_tokens;
  const int64_t q_width = s.n_heads * s.head_dim;
  const int64_t kv_width = s.n_kv_heads * s.head_dim;
  const int64_t group = s.n_heads / s.n_kv_heads;
  Matrix out(q.size());
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < s.n_heads; ++h) {
      for (int64_t t = 0; t < s.n_tokens; ++t) {
        const int64_t position = s.n_past + t;
        std::vector<double> scores(total);
        for (int64_t j = 0; j < total; ++j) {
          bool visible =
              j <= position && (s.sliding_window <= 0 || position - j < s.sliding_window);
          double dot = 0;
          for (int64_t d = 0; d < s.head_dim; ++d) {
            dot += static_cast<double>(q[(b * s.n_tokens + t) * q_width + h * s.head_dim + d]) *
                   keys[(b * total + j) * kv_width + (h / group) * s.head_dim + d];
          }
          scores[j] = visible ? dot * s.scale : -std::numeric_limits<double>::infinity();
        }
        double max_score = -std::numeric_limits<double>::infinity();
        for (double score : scores) max_score = std::max(max_score, score);
        double sum = 0;
        for (double& score : scores) sum += (score = std::exp(score - max_score));
        for (int64_t d = 0; d < s.head_dim; ++d) {
          double value = 0;
          for (int64_t j = 0; j < total; ++j) {
            value +=
                scores[j] / sum * values[(b * total + j) * kv_width + (h / group) * s.head_dim + d];
          }
          out[(b * s.n_tokens + t) * q_width + h * s.head_dim + d] = static_cast<float>(value);
        }
      }
    }
  }
  return out;
}

double activation(double x, Activation activation) {
  switch (activation) {
    case Activation::Silu:
      return x / (1 + std::exp(-x));
    case Activation::GeluTanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::GeluErf:
      return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::Relu:
      return x > 0 ? x : 0;
  }
  return x;
}

}  // namespace flow2::reference
