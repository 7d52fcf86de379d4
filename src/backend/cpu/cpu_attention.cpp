// Causal multi-head attention with grouped key/value heads, read straight from the KV cache.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"
#include "flow2/error.h"

namespace flow2 {

void CpuBackend::attention(Tensor& out, const Tensor& q, const Tensor& k_cache,
                           const Tensor& v_cache, const AttentionShape& shape) {
  const int64_t capacity = check_attention(out, q, k_cache, v_cache, shape);
  const int64_t head_dim = shape.head_dim;
  const int64_t q_width = shape.n_heads * head_dim;
  const int64_t kv_width = shape.n_kv_heads * head_dim;
  const int64_t longest = longest_past(shape);
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const int64_t tasks = shape.batch * shape.n_tokens * shape.n_heads;

  const int64_t work = tasks * (longest + shape.n_tokens) * head_dim;
#pragma omp parallel if (work >= kMinParallelElements)
  {
    std::vector<float> scores(static_cast<size_t>(longest + shape.n_tokens));
    std::vector<float> accumulator(static_cast<size_t>(head_dim));
#pragma omp for schedule(dynamic, 4)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t head = task % shape.n_heads;
      const int64_t row = task / shape.n_heads;  // b * n_tokens + t
      const int64_t b = row / shape.n_tokens;
      const int64_t position = past_length(shape, b) + row % shape.n_tokens;
      const int64_t first =
          shape.sliding_window > 0 ? std::max<int64_t>(0, position - shape.sliding_window + 1) : 0;
      const float* query = q.data_as<float>() + row * q_width + head * head_dim;
      const int64_t kv_offset = (head / group) * head_dim;
      const float* keys = k_cache.data_as<float>() + b * capacity * kv_width + kv_offset;
      const float* values = v_cache.data_as<float>() + b * capacity * kv_width + kv_offset;

      float max_score = -INFINITY;
      for (int64_t j = first; j <= position; ++j) {
        const float* key = keys + j * kv_width;
        float dot = 0.0f;
        for (int64_t d = 0; d < head_dim; ++d) dot += query[d] * key[d];
        scores[j] = dot * shape.scale;
        max_score = std::max(max_score, scores[j]);
      }
      float total = 0.0f;
      std::fill(accumulator.begin(), accumulator.end(), 0.0f);
      for (int64_t j = first; j <= position; ++j) {
        float weight = std::exp(scores[j] - max_score);
        total += weight;
        const float* value = values + j * kv_width;
        for (int64_t d = 0; d < head_dim; ++d) accumulator[d] += weight * value[d];
      }
      float* result = out.data_as<float>() + row * q_width + head * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) result[d] = accumulator[d] / total;
    }
  }
}

}  // namespace flow2
