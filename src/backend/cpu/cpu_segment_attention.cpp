// Causal attention over whole training rows, kept within segments (packed examples), and its
// backward. The forward keeps each softmax's log-sum-exp; the backward recomputes the
// probabilities from it (as FlashAttention does), so no [T, T] matrix is ever stored:
//   dV_j += p_j dO,  dp_j = dO . v_j,  ds_j = p_j (dp_j - dO . O),  dQ = scale sum_j ds_j k_j,
//   dK_j += scale ds_j q.
// Each (row, head) is one task; key/value gradients go to per-head buffers summed over the
// query heads that share a key/value head afterwards.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

struct Geometry {
  int64_t batch, tokens, heads, kv_heads, dim, group, q_width, kv_width;
};

Geometry geometry_of(const Tensor& q, const Tensor& k, const Tensor& v,
                     const SegmentAttention& attention) {
  const AttentionShape& s = attention.shape;
  Geometry g{s.batch,
             s.n_tokens,
             s.n_heads,
             s.n_kv_heads,
             s.head_dim,
             1,
             s.n_heads * s.head_dim,
             s.n_kv_heads * s.head_dim};
  check(g.kv_heads > 0 && g.heads % g.kv_heads == 0, "segment_attention: {} heads over {}", g.heads,
        g.kv_heads);
  g.group = g.heads / g.kv_heads;
  const int64_t rows = g.batch * g.tokens;
  check(q.rows() == rows && q.cols() == g.q_width && k.rows() == rows && k.cols() == g.kv_width &&
            v.rows() == rows && v.cols() == g.kv_width,
        "segment_attention: q {}, k {}, v {} do not match the shape", shape_string(q.shape()),
        shape_string(k.shape()), shape_string(v.shape()));
  check(attention.segments.empty() || static_cast<int64_t>(attention.segments.size()) == rows,
        "segment_attention: {} segment ids for {} tokens", attention.segments.size(), rows);
  return g;
}

// The first key each token sees: its segment's start, or the sliding window's.
std::vector<int64_t> first_keys(const Geometry& g, const SegmentAttention& attention) {
  std::vector<int64_t> first(static_cast<size_t>(g.batch * g.tokens));
  for (int64_t b = 0; b < g.batch; ++b) {
    int64_t start = 0;
    for (int64_t t = 0; t < g.tokens; ++t) {
      const int64_t i = b * g.tokens + t;
      if (t > 0 && !attention.segments.empty() &&
          attention.segments[i] != attention.segments[i - 1]) {
        start = t;
      }
      const int64_t window = attention.shape.sliding_window;
      first[i] = window > 0 ? std::max(start, t - window + 1) : start;
    }
  }
  return first;
}

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

void CpuBackend::segment_attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const SegmentAttention& attention) {
  const Geometry g = geometry_of(q, k, v, attention);
  check(out.numel() == q.numel() && lse.numel() == g.batch * g.tokens * g.heads,
        "segment_attention: outputs {} and {} do not match", shape_string(out.shape()),
        shape_string(lse.shape()));
  const std::vector<int64_t> first = first_keys(g, attention);
  const float scale = attention.shape.scale;
  const int64_t tasks = g.batch * g.tokens * g.heads;
#pragma omp parallel if (tasks * g.tokens * g.dim >= kMinParallelElements)
  {
    std::vector<float> scores(static_cast<size_t>(g.tokens));
#pragma omp for schedule(dynamic, 4)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t head = task % g.heads;
      const int64_t i = task / g.heads;  // b * tokens + t
      const int64_t row_start = i / g.tokens * g.tokens;
      const float* query = q.data_as<float>() + i * g.q_width + head * g.dim;
      const int64_t kv_offset = head / g.group * g.dim;
      float max_score = -INFINITY;
      for (int64_t j = row_start + first[i]; j <= i; ++j) {
        float score = scale * dot(query, k.data_as<float>() + j * g.kv_width + kv_offset, g.dim);
        scores[j - row_start] = score;
        max_score = std::max(max_score, score);
      }
      float* result = out.data_as<float>() + i * g.q_width + head * g.dim;
      std::fill_n(result, g.dim, 0.0f);
      double total = 0.0;
      for (int64_t j = row_start + first[i]; j <= i; ++j) {
        const float weight = std::exp(scores[j - row_start] - max_score);
        total += weight;
        const float* value = v.data_as<float>() + j * g.kv_width + kv_offset;
        for (int64_t d = 0; d < g.dim; ++d) result[d] += weight * value[d];
      }
      const float inverse = static_cast<float>(1.0 / total);
      for (int64_t d = 0; d < g.dim; ++d) result[d] *= inverse;
      lse.data_as<float>()[task] = max_score + static_cast<float>(std::log(total));
    }
  }
}

void CpuBackend::segment_attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& d_out,
                                            const Tensor& q, const Tensor& k, const Tensor& v,
                                            const Tensor& out, const Tensor& lse,
                                            const SegmentAttention& attention) {
  const Geometry g = geometry_of(q, k, v, attention);
  check(dq.numel() == q.numel() && d_out.numel() == q.numel() && out.numel() == q.numel() &&
            dk.numel() == k.numel() && dv.numel() == v.numel() &&
            lse.numel() == g.batch * g.tokens * g.heads,
        "segment_attention_backward: gradient shapes do not match q {}", shape_string(q.shape()));
  const std::vector<int64_t> first = first_keys(g, attention);
  const float scale = attention.shape.scale;
  // Per query head: dK and dV of its own, [batch, heads, tokens, dim].
  const int64_t per_head = g.tokens * g.dim;
  std::vector<float> head_dk(static_cast<size_t>(g.batch * g.heads * per_head), 0.0f);
  std::vector<float> head_dv(head_dk.size(), 0.0f);
  const int64_t tasks = g.batch * g.heads;
#pragma omp parallel if (tasks * g.tokens * g.tokens * g.dim >= kMinParallelElements)
  {
    std::vector<float> probabilities(static_cast<size_t>(g.tokens));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / g.heads;
      const int64_t head = task % g.heads;
      const int64_t kv_offset = head / g.group * g.dim;
      float* my_dk = head_dk.data() + task * per_head;
      float* my_dv = head_dv.data() + task * per_head;
      for (int64_t t = 0; t < g.tokens; ++t) {
        const int64_t i = b * g.tokens + t;
        const int64_t row_start = b * g.tokens;
        const float* query = q.data_as<float>() + i * g.q_width + head * g.dim;
        const float* grad = d_out.data_as<float>() + i * g.q_width + head * g.dim;
        const float* result = out.data_as<float>() + i * g.q_width + head * g.dim;
        const float log_total = lse.data_as<float>()[i * g.heads + head];
        const float grad_dot_out = dot(grad, result, g.dim);
        float* grad_query = dq.data_as<float>() + i * g.q_width + head * g.dim;
        std::fill_n(grad_query, g.dim, 0.0f);
        for (int64_t j = row_start + first[i]; j <= i; ++j) {
          const float* key = k.data_as<float>() + j * g.kv_width + kv_offset;
          const float* value = v.data_as<float>() + j * g.kv_width + kv_offset;
          const float p = std::exp(scale * dot(query, key, g.dim) - log_total);
          const float ds = p * (dot(grad, value, g.dim) - grad_dot_out) * scale;
          float* key_grad = my_dk + (j - row_start) * g.dim;
          float* value_grad = my_dv + (j - row_start) * g.dim;
          for (int64_t d = 0; d < g.dim; ++d) {
            grad_query[d] += ds * key[d];
            key_grad[d] += ds * query[d];
            value_grad[d] += p * grad[d];
          }
        }
      }
    }
    // Sum the query heads of each key/value head.
#pragma omp for schedule(static)
    for (int64_t i = 0; i < g.batch * g.tokens; ++i) {
      const int64_t b = i / g.tokens;
      const int64_t t = i % g.tokens;
      for (int64_t kv = 0; kv < g.kv_heads; ++kv) {
        float* key_grad = dk.data_as<float>() + i * g.kv_width + kv * g.dim;
        float* value_grad = dv.data_as<float>() + i * g.kv_width + kv * g.dim;
        std::fill_n(key_grad, g.dim, 0.0f);
        std::fill_n(value_grad, g.dim, 0.0f);
        for (int64_t h = kv * g.group; h < (kv + 1) * g.group; ++h) {
          const int64_t offset = (b * g.heads + h) * per_head + t * g.dim;
          for (int64_t d = 0; d < g.dim; ++d) {
            key_grad[d] += head_dk[offset + d];
            value_grad[d] += head_dv[offset + d];
          }
        }
      }
    }
  }
}

}  // namespace flow2
