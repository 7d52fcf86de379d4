#include "train/token_loss.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace flow2 {
namespace {

constexpr int64_t kChunkRows = 128;

}  // namespace

double token_loss(Backend& backend, const Tensor& hidden, const Tensor& lm_head,
                  const TokenTargets& targets, Tensor* d_hidden) {
  const int64_t width = hidden.cols();
  const int64_t vocab = lm_head.rows();
  const int64_t count = static_cast<int64_t>(targets.rows.size());
  if (d_hidden) std::memset(d_hidden->data(), 0, d_hidden->nbytes());
  double total = 0.0;
  for (int64_t begin = 0; begin < count; begin += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, count - begin);
    Tensor selected = backend.empty({rows, width});
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(selected.data_as<float>() + r * width,
                  hidden.data_as<float>() + targets.rows[begin + r] * width,
                  static_cast<size_t>(width) * sizeof(float));
    }
    Tensor logits = backend.empty({rows, vocab});
    backend.matmul(logits, selected, lm_head, nullptr);
    double chunk_loss = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : chunk_loss) if (rows * vocab >= (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      float* row = logits.data_as<float>() + r * vocab;
      const float max_logit = *std::max_element(row, row + vocab);
      double sum = 0.0;
      for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j] - max_logit));
      const int32_t label = targets.labels[begin + r];
      chunk_loss += std::log(sum) - static_cast<double>(row[label] - max_logit);
      if (!d_hidden) continue;
      // d loss / d logits = softmax - onehot, in place.
      const double inverse = 1.0 / sum;
      for (int64_t j = 0; j < vocab; ++j) {
        row[j] = static_cast<float>(std::exp(static_cast<double>(row[j] - max_logit)) * inverse);
      }
      row[label] -= 1.0f;
    }
    total += chunk_loss;
    if (!d_hidden) continue;
    backend.matmul_input_grad(selected, logits, lm_head, false);
    for (int64_t r = 0; r < rows; ++r) {
      float* target = d_hidden->data_as<float>() + targets.rows[begin + r] * width;
      const float* source = selected.data_as<float>() + r * width;
      for (int64_t j = 0; j < width; ++j) target[j] += source[j];
    }
  }
  return total;
}

}  // namespace flow2
