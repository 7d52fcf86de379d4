// The operations a model's forward pass is made of. The model code is written once against
// this interface; each backend (CPU now, CUDA later) implements every op, and every op is tested
// against a slow reference implementation.
//
// Conventions: activations are float32 row-major matrices. An op sees a tensor as its 2-D view
// [rows, cols] (cols = last dimension). Outputs are overwritten, not accumulated, unless said.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flow2/model_config.h"
#include "flow2/sampler.h"
#include "flow2/tensor.h"

namespace flow2 {

class WeightStore;

// Geometry of one attention call over a key/value cache.
struct AttentionShape {
  int64_t batch = 1;     // independent sequences
  int64_t n_tokens = 1;  // new tokens (queries) per sequence
  int64_t n_past = 0;    // tokens each sequence had in the cache before these
  int64_t n_heads = 1;
  int64_t n_kv_heads = 1;  // query head h reads key/value head h / (n_heads / n_kv_heads)
  int64_t head_dim = 1;
  float scale = 1.0f;          // multiplies q.k before the softmax
  int64_t sliding_window = 0;  // > 0: a query at position p sees keys at p-window+1 .. p
  // Sequences at different points (batched decoding): when not empty, sequence b had past[b]
  // tokens before these, and n_past is unused.
  std::span<const int64_t> past = {};
};

// Tokens sequence b held before this call, and the most any sequence held.
inline int64_t past_length(const AttentionShape& shape, int64_t b) {
  return shape.past.empty() ? shape.n_past : shape.past[static_cast<size_t>(b)];
}
inline int64_t longest_past(int64_t n_past, std::span<const int64_t> past) {
  int64_t longest = n_past;
  if (!past.empty()) {
    longest = 0;
    for (int64_t length : past) longest = length > longest ? length : longest;
  }
  return longest;
}
inline int64_t longest_past(const AttentionShape& shape) {
  return longest_past(shape.n_past, shape.past);
}

// Geometry of causal attention over whole training rows (no cache): q [batch * n_tokens,
// n_heads * head_dim], k and v [batch * n_tokens, n_kv_heads * head_dim]. segments
// [batch * n_tokens] (empty: one segment per row) keeps attention within runs of equal ids, so
// that packed examples do not see each other; n_past is unused.
struct SegmentAttention {
  AttentionShape shape;
  std::span<const int32_t> segments;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;

  // --- memory
  virtual Tensor empty(Shape shape) = 0;  // float32, uninitialized
  virtual Tensor zeros(Shape shape) = 0;  // float32, zero-filled
  // A weight in the form this backend computes with (float32 here; a view without copy when the
  // host bytes already are aligned float32).
  virtual Tensor upload_weight(const HostTensor& host) = 0;
  // Called with a checkpoint's tensors before a model's weights are uploaded: a backend with
  // memory of its own fails here when they cannot fit, saying how much they need and how
  // much is free.
  virtual void prepare_weights(const WeightStore& store) { (void)store; }
  virtual Tensor from_host(std::span<const float> values, Shape shape) = 0;
  // Storage of one layer's keys or values in a KV cache: float32 here; a backend may keep a
  // smaller type that its kv_write and attention read (the CUDA backend keeps bf16 for 16-bit
  // and quantized models).
  virtual Tensor make_cache_tensor(Shape shape) { return empty(std::move(shape)); }
  virtual std::vector<float> to_host(const Tensor& tensor) = 0;

  // The index of each row's largest value (the first one on ties): greedy decoding's choice,
  // without reading the logits back where the backend keeps them on a device.
  virtual std::vector<int32_t> argmax_rows(const Tensor& logits) {
    const std::vector<float> values = to_host(logits);
    std::vector<int32_t> indices;
    const auto width = static_cast<size_t>(logits.cols());
    for (size_t row = 0; width > 0 && row < values.size() / width; ++row) {
      size_t best = row * width;
      for (size_t j = best + 1; j < (row + 1) * width; ++j) {
        if (values[j] > values[best]) best = j;
      }
      indices.push_back(static_cast<int32_t>(best - row * width));
    }
    return indices;
  }
  // Sampling's choice for each row of logits [rows, vocab]: the penalties of `history` (the
  // same tokens for every row, latest last), then choose_token (sampler.h) with uniforms[row]
  // (one draw in [0, 1) per row). This default reads the logits back and chooses on the CPU; a
  // backend that keeps them on a device may choose there, with the same result. Like
  // argmax_rows, not inside a decoding step.
  virtual std::vector<int32_t> sample_rows(const Tensor& logits, const SamplingOptions& options,
                                           std::span<const int32_t> history,
                                           std::span<const double> uniforms);

  // --- tokens chosen on the device (pipelined decoding, generate.h). A backend whose ops run
  // asynchronously may leave the token it chooses where the logits are: the next step reads it
  // there (Model::forward of a token-id tensor, through embedding_of_ids), so the host records
  // that step while the device still computes this one, and reads the token back a step later.
  // make_token_ids: an int32 [rows] tensor for such ids, or an undefined one where the backend
  // keeps none on a device (the default: callers then choose through argmax_rows/sample_rows).
  virtual Tensor make_token_ids(int64_t rows) {
    (void)rows;
    return {};
  }
  // sample_rows's choice (with no penalties: they read the history on the host) written into
  // `ids` (of make_token_ids, one per row of logits), and a copy of it to the host started;
  // returns a ticket for chosen_ids. Not inside a decoding step.
  virtual int64_t choose_into(Tensor& ids, const Tensor& logits, const SamplingOptions& options,
                              std::span<const double> uniforms);
  // The ids that choose_into's `ticket` wrote, once their copy is done (it waits). Tickets stay
  // readable until a few later choices reuse their host memory; an older one is an error.
  virtual std::vector<int32_t> chosen_ids(int64_t ticket);
  // embedding(out, table, ids, false) of ids held in a tensor of make_token_ids.
  virtual void embedding_of_ids(Tensor& out, const Tensor& table, const Tensor& ids);

  // --- steps: the ops between begin_step and end_step are one decoding step (one new token per
  // sequence). A backend may queue them and run the step as a whole: the CUDA backend replays
  // a step that ran before as one CUDA graph. Tensors made during a step stay valid until the
  // next step begins; nothing may be read back to the host inside a step. abort_step drops a
  // step that failed half-way.
  virtual void begin_step() {}
  virtual void end_step() {}
  virtual void abort_step() {}
  // The most device memory this backend has held at once (0 where the host's memory counts).
  virtual int64_t peak_device_bytes() const { return 0; }

  // --- ops
  // out[i] = table[ids[i]]; with `accumulate`, out[i] += table[ids[i]].
  virtual void embedding(Tensor& out, const Tensor& table, std::span<const int32_t> ids,
                         bool accumulate) = 0;
  // out = x * weight^T (+ bias): x [M, K], weight [N, K] (a Linear layer's layout), out [M, N].
  virtual void matmul(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) = 0;
  virtual void rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) = 0;
  virtual void layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                          float eps) = 0;
  // Rotates each head of x [tokens, heads * head_dim] in place, rotate-half layout as in
  // transformers: angle(i) = positions[token] * inv_freq[i] for i < head_dim / 2.
  virtual void rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
                    std::span<const float> inv_freq) = 0;
  // Writes x [batch * n_tokens, width] into cache [batch * capacity, width] at rows
  // n_past .. n_past + n_tokens - 1 of each sequence (past[b] .. when `past` is not empty).
  virtual void kv_write(Tensor& cache, const Tensor& x, int64_t batch, int64_t n_tokens,
                        int64_t n_past, std::span<const int64_t> past = {}) = 0;
  // Causal attention of q [batch * n_tokens, n_heads * head_dim] over the first
  // n_past + n_tokens rows of each sequence's cache; out has q's shape.
  virtual void attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         const AttentionShape& shape) = 0;
  // out = act(gate) * up, elementwise.
  virtual void gated_activation(Tensor& out, const Tensor& gate, const Tensor& up,
                                Activation activation) = 0;
  virtual void activation(Tensor& x, Activation activation) = 0;  // in place
  // out = a + b, elementwise; out may be a or b.
  virtual void add(Tensor& out, const Tensor& a, const Tensor& b) = 0;

  // --- fused ops: each computes exactly what the ops it names compute, in that order; a
  // backend may run them as one kernel (fewer launches and passes over memory while decoding).
  // x += delta, then out = rms_norm(x) with `weight`.
  virtual void add_rms_norm(Tensor& x, const Tensor& delta, Tensor& out, const Tensor& weight,
                            float eps) {
    add(x, x, delta);
    rms_norm(out, x, weight, eps);
  }
  // out = act(x * gate^T) * (x * up^T): the gated feed-forward's two projections and its
  // activation (gate and up [N, K] without bias).
  virtual void gated_matmul(Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up,
                            Activation activation) {
    Tensor up_out = empty({x.rows(), up.rows()});
    matmul(out, x, gate, nullptr);
    matmul(up_out, x, up, nullptr);
    gated_activation(out, out, up_out, activation);
  }
  // outs[i] = x * weights[i]^T (+ biases[i]) for projections of the same x (attention's q, k and
  // v): spans of one length, a null bias for none. The default is one matmul each (op_checks.cpp).
  virtual void shared_input_matmul(std::span<Tensor* const> outs, const Tensor& x,
                                   std::span<const Tensor* const> weights,
                                   std::span<const Tensor* const> biases);
  // rope(q) and rope(k) (skipped when inv_freq is empty), then kv_write of k and of v.
  virtual void rope_and_cache(Tensor& q, Tensor& k, const Tensor& v, Tensor& k_cache,
                              Tensor& v_cache, int64_t head_dim, std::span<const int32_t> positions,
                              std::span<const float> inv_freq, int64_t batch, int64_t n_tokens,
                              int64_t n_past, std::span<const int64_t> past = {}) {
    if (!inv_freq.empty()) {
      rope(q, head_dim, positions, inv_freq);
      rope(k, head_dim, positions, inv_freq);
    }
    kv_write(k_cache, k, batch, n_tokens, n_past, past);
    kv_write(v_cache, v, batch, n_tokens, n_past, past);
  }
  // shared_input_matmul of q, k and v (three weights and three biases, a null one for none),
  // then rope_and_cache: attention's projections rotated and stored, so that a backend may
  // rotate and store them in the products' epilogue.
  virtual void qkv_rope_cache(Tensor& q, Tensor& k, Tensor& v, const Tensor& x,
                              std::span<const Tensor* const> weights,
                              std::span<const Tensor* const> biases, Tensor& k_cache,
                              Tensor& v_cache, int64_t head_dim, std::span<const int32_t> positions,
                              std::span<const float> inv_freq, int64_t batch, int64_t n_tokens,
                              int64_t n_past, std::span<const int64_t> past = {}) {
    Tensor* const outs[] = {&q, &k, &v};
    shared_input_matmul(outs, x, weights, biases);
    rope_and_cache(q, k, v, k_cache, v_cache, head_dim, positions, inv_freq, batch, n_tokens,
                   n_past, past);
  }

  // --- training: forward ops that keep what backward needs, and the backward of each op.
  // Frozen weights get no gradients; only inputs do. RoPE's backward is `rope` with negated
  // positions (the inverse rotation).
  // dx = dy * weight (weight [N, K] of any dtype matmul takes, dy [M, N], dx [M, K]); with
  // `accumulate`, dx += dy * weight.
  virtual void matmul_input_grad(Tensor& dx, const Tensor& dy, const Tensor& weight,
                                 bool accumulate) = 0;
  // dx += d(norm(x)) / dx applied to dy (adds: dx is usually the residual stream's gradient).
  virtual void rms_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x,
                                 const Tensor& weight, float eps) = 0;
  virtual void layer_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x,
                                   const Tensor& weight, float eps) = 0;
  // Causal attention within segments; also writes lse [batch * n_tokens, n_heads], each
  // softmax's log-sum-exp, from which backward recomputes the probabilities.
  virtual void segment_attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const SegmentAttention& attention) = 0;
  // dq, dk, dv (overwritten) from d_out, given the forward's inputs, out and lse.
  virtual void segment_attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& d_out,
                                          const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& out, const Tensor& lse,
                                          const SegmentAttention& attention) = 0;
  // out = act(gate) * up: d_gate and d_up (overwritten) from d_out.
  virtual void gated_activation_backward(Tensor& d_gate, Tensor& d_up, const Tensor& d_out,
                                         const Tensor& gate, const Tensor& up,
                                         Activation activation) = 0;
  // dx = d_out * act'(x); dx may be d_out.
  virtual void activation_backward(Tensor& dx, const Tensor& d_out, const Tensor& x,
                                   Activation activation) = 0;
};

std::unique_ptr<Backend> make_cpu_backend();
// "cpu" (or later "cuda"); an unknown or unavailable name is an error.
std::unique_ptr<Backend> make_backend(const std::string& name);

}  // namespace flow2
