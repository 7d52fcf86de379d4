// Shape checks shared by the backends (op_checks.h).
#include "backend/op_checks.h"

#include "flow2/error.h"

namespace flow2 {

void check_matmul(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const int64_t m = x.rows(), k = x.cols(), n = weight.rows();
  check(weight.cols() == k && out.rows() == m && out.cols() == n,
        "matmul: shapes {} x {}^T -> {} do not agree", shape_string(x.shape()),
        shape_string(weight.shape()), shape_string(out.shape()));
  check(!bias || bias->numel() == n, "matmul: bias has {} elements, expected {}",
        bias ? bias->numel() : 0, n);
}

void check_shared_input_matmul(std::span<Tensor* const> outs, const Tensor& x,
                               std::span<const Tensor* const> weights,
                               std::span<const Tensor* const> biases) {
  check(outs.size() == weights.size() && biases.size() == weights.size(),
        "shared_input_matmul: {} outputs, {} weights and {} biases", outs.size(), weights.size(),
        biases.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    check(outs[i] && weights[i], "shared_input_matmul: product {} has no output or weight", i);
    check_matmul(*outs[i], x, *weights[i], biases[i]);
  }
}

// Backend's default: the products one by one (backends without a fused kernel).
void Backend::shared_input_matmul(std::span<Tensor* const> outs, const Tensor& x,
                                  std::span<const Tensor* const> weights,
                                  std::span<const Tensor* const> biases) {
  check_shared_input_matmul(outs, x, weights, biases);
  for (size_t i = 0; i < weights.size(); ++i) matmul(*outs[i], x, *weights[i], biases[i]);
}

void check_rope(const Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
                std::span<const float> inv_freq) {
  check(head_dim % 2 == 0 && static_cast<int64_t>(inv_freq.size()) == head_dim / 2,
        "rope: {} frequencies for head dimension {}", inv_freq.size(), head_dim);
  check(x.rows() == static_cast<int64_t>(positions.size()) && x.cols() % head_dim == 0,
        "rope: {} positions for tensor {}", positions.size(), shape_string(x.shape()));
}

int64_t check_kv_write(const Tensor& cache, const Tensor& x, int64_t batch, int64_t n_tokens,
                       int64_t n_past, std::span<const int64_t> past) {
  check(cache.cols() == x.cols() && x.rows() == batch * n_tokens && cache.rows() % batch == 0,
        "kv_write: {} into cache {} for batch {}", shape_string(x.shape()),
        shape_string(cache.shape()), batch);
  check(past.empty() || static_cast<int64_t>(past.size()) == batch,
        "kv_write: {} past lengths for {} sequences", past.size(), batch);
  const int64_t capacity = cache.rows() / batch;
  const int64_t longest = longest_past(n_past, past);
  check(longest + n_tokens <= capacity, "kv_write: {} tokens exceed the cache capacity {}",
        longest + n_tokens, capacity);
  return capacity;
}

int64_t check_attention(const Tensor& out, const Tensor& q, const Tensor& k_cache,
                        const Tensor& v_cache, const AttentionShape& shape) {
  const int64_t q_width = shape.n_heads * shape.head_dim;
  const int64_t kv_width = shape.n_kv_heads * shape.head_dim;
  check(shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0,
        "attention: {} heads over {} key/value heads", shape.n_heads, shape.n_kv_heads);
  check(q.cols() == q_width && q.rows() == shape.batch * shape.n_tokens && out.numel() == q.numel(),
        "attention: query {} does not match the shape", shape_string(q.shape()));
  check(k_cache.cols() == kv_width && v_cache.cols() == kv_width &&
            k_cache.rows() == v_cache.rows() && k_cache.rows() % shape.batch == 0,
        "attention: cache {} does not match the shape", shape_string(k_cache.shape()));
  check(shape.past.empty() || static_cast<int64_t>(shape.past.size()) == shape.batch,
        "attention: {} past lengths for {} sequences", shape.past.size(), shape.batch);
  const int64_t capacity = k_cache.rows() / shape.batch;
  const int64_t total = longest_past(shape) + shape.n_tokens;
  check(total <= capacity, "attention: {} tokens exceed capacity {}", total, capacity);
  return capacity;
}

}  // namespace flow2
