// The decoder forward pass, written once against the Backend interface for every architecture.
#include <cmath>

#include "flow2/error.h"
#include "flow2/model.h"
#include "lora/attach_lora.h"
#include "model/decoder_weights.h"
#include "model/rope_frequencies.h"

namespace flow2 {

struct Model::State {
  ModelConfig config;
  Backend& backend;
  DecoderWeights weights;
  RopeFrequencies rope;
};

namespace {

const Tensor* bias_of(const Linear& linear) {
  return linear.bias.defined() ? &linear.bias : nullptr;
}

void apply_linear(Backend& backend, Tensor& out, const Tensor& x, const Linear& linear) {
  backend.matmul(out, x, linear.weight, bias_of(linear));
  if (linear.lora_a.defined()) {
    // The low-rank path stays float32 whatever the base weight's dtype (quantized too).
    Tensor down = backend.empty({x.rows(), linear.lora_a.rows()});
    backend.matmul(down, x, linear.lora_a, nullptr);
    Tensor delta = backend.empty({x.rows(), out.cols()});
    backend.matmul(delta, down, linear.lora_b, nullptr);
    backend.add(out, out, delta);
  }
}

bool has_adapter(const DecoderLayer& layer) {
  return layer.q.lora_a.defined() || layer.k.lora_a.defined() || layer.v.lora_a.defined();
}

// q, k and v of the same normed x, rotated and stored in the layer's cache: one fused op (one
// kernel on CUDA while decoding) unless an adapter's low-rank path has to be added to one of the
// products first.
void project_rope_cache(Backend& backend, Tensor& q, Tensor& k, Tensor& v, const Tensor& x,
                        const DecoderLayer& layer, Tensor& k_cache, Tensor& v_cache,
                        int64_t head_dim, std::span<const int32_t> positions,
                        std::span<const float> inv_freq, int64_t batch, int64_t n_tokens,
                        int64_t n_past, std::span<const int64_t> past) {
  if (has_adapter(layer)) {
    apply_linear(backend, q, x, layer.q);
    apply_linear(backend, k, x, layer.k);
    apply_linear(backend, v, x, layer.v);
    backend.rope_and_cache(q, k, v, k_cache, v_cache, head_dim, positions, inv_freq, batch,
                           n_tokens, n_past, past);
    return;
  }
  const Tensor* const weights[] = {&layer.q.weight, &layer.k.weight, &layer.v.weight};
  const Tensor* const biases[] = {bias_of(layer.q), bias_of(layer.k), bias_of(layer.v)};
  backend.qkv_rope_cache(q, k, v, x, weights, biases, k_cache, v_cache, head_dim, positions,
                         inv_freq, batch, n_tokens, n_past, past);
}

void apply_norm(Backend& backend, Tensor& out, const Tensor& x, const Norm& norm, float eps) {
  if (norm.bias.defined()) {
    backend.layer_norm(out, x, norm.weight, norm.bias, eps);
  } else {
    backend.rms_norm(out, x, norm.weight, eps);
  }
}

// Brackets a decoding step's ops (Backend::begin_step); a step that throws is dropped.
class StepScope {
 public:
  StepScope(Backend& backend, bool active) : backend_(backend), active_(active) {
    if (active_) backend_.begin_step();
  }
  ~StepScope() {
    if (active_) backend_.abort_step();
  }
  void end() {
    if (active_) backend_.end_step();
    active_ = false;
  }

 private:
  Backend& backend_;
  bool active_;
};

// x += delta, then out = norm(x): one fused op for RMSNorm.
void residual_norm(Backend& backend, Tensor& x, const Tensor& delta, Tensor& out, const Norm& norm,
                   float eps) {
  if (norm.bias.defined()) {
    backend.add(x, x, delta);
    backend.layer_norm(out, x, norm.weight, norm.bias, eps);
  } else {
    backend.add_rms_norm(x, delta, out, norm.weight, eps);
  }
}

float attention_scale(const ModelConfig& config, int64_t layer) {
  float scale = 1.0f;
  if (config.family != ModelFamily::Gpt2 || config.scale_attn_weights) {
    scale = 1.0f / std::sqrt(static_cast<float>(config.head_dim));
  }
  if (config.scale_attn_by_inverse_layer_idx) scale /= static_cast<float>(layer + 1);
  return scale;
}

}  // namespace

Model::Model(std::unique_ptr<State> state) : state_(std::move(state)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const Checkpoint& checkpoint, Backend& backend,
                                   const LoraAdapter* adapter) {
  const ModelConfig& config = checkpoint.config;
  DecoderWeights weights = config.family == ModelFamily::Gpt2
                               ? bind_gpt2_weights(checkpoint.weights, config, backend)
                               : bind_llama_weights(checkpoint.weights, config, backend);
  if (adapter) attach_lora(weights, *adapter, config, backend);
  RopeFrequencies rope(config.rope, config.head_dim, config.max_position_embeddings);
  auto state =
      std::unique_ptr<State>(new State{config, backend, std::move(weights), std::move(rope)});
  return std::unique_ptr<Model>(new Model(std::move(state)));
}

const ModelConfig& Model::config() const {
  return state_->config;
}
Backend& Model::backend() const {
  return state_->backend;
}

KVCache Model::make_cache(int64_t batch, int64_t capacity) const {
  return KVCache(state_->backend, state_->config, batch, capacity);
}

Tensor Model::forward_sequence(std::span<const int32_t> ids, int64_t sequence, KVCache& cache,
                               LogitRows rows) {
  KVCache alone = cache.sequence_view(sequence);
  Tensor logits = forward(ids, 1, alone, rows);
  cache.set_length(sequence, alone.length());
  return logits;
}

Tensor Model::forward(std::span<const int32_t> ids, int64_t batch, KVCache& cache, LogitRows rows) {
  const int64_t vocab = state_->config.vocab_size;
  for (size_t i = 0; i < ids.size(); ++i) {
    check(ids[i] >= 0 && ids[i] < vocab,
          "token id {} at position {} is outside the vocabulary (size {})", ids[i], i, vocab);
  }
  return run(ids, nullptr, static_cast<int64_t>(ids.size()), batch, cache, rows);
}

Tensor Model::forward(const Tensor& ids, int64_t batch, KVCache& cache, LogitRows rows) {
  check(ids.dtype() == DType::I32 && ids.numel() == batch,
        "forward: device token ids are int32, one per sequence ({}), not {} {}", batch,
        dtype_name(ids.dtype()), shape_string(ids.shape()));
  return run({}, &ids, ids.numel(), batch, cache, rows);
}

Tensor Model::run(std::span<const int32_t> host_ids, const Tensor* device_ids, int64_t count,
                  int64_t batch, KVCache& cache, LogitRows rows) {
  const ModelConfig& config = state_->config;
  Backend& backend = state_->backend;
  const DecoderWeights& weights = state_->weights;
  check(batch > 0 && count > 0 && count % batch == 0,
        "forward: {} token ids do not split into {} sequences", count, batch);
  check(cache.batch() == batch, "forward: the KV cache holds {} sequences, not {}", cache.batch(),
        batch);
  const int64_t n_tokens = count / batch;
  // Sequences may stand at different lengths (batched decoding): each has its own positions.
  const bool uniform = cache.uniform();
  const int64_t n_past = cache.length(0);
  const std::span<const int64_t> past =
      uniform ? std::span<const int64_t>() : std::span<const int64_t>(cache.lengths());
  const int64_t longest = cache.longest();
  check(longest + n_tokens <= cache.capacity(),
        "sequence of {} tokens exceeds the KV cache capacity of {}", longest + n_tokens,
        cache.capacity());
  std::vector<int32_t> positions(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    positions[i] = static_cast<int32_t>(cache.length(i / n_tokens) + i % n_tokens);
  }

  StepScope step(backend, n_tokens == 1);
  const int64_t hidden = config.hidden_size;
  Tensor x = backend.empty({count, hidden});
  if (device_ids) {
    backend.embedding_of_ids(x, weights.token_embedding, *device_ids);
  } else {
    backend.embedding(x, weights.token_embedding, host_ids, false);
  }
  if (weights.position_embedding.defined()) {
    check(longest + n_tokens <= config.max_position_embeddings,
          "sequence of {} tokens exceeds the {} learned positions", longest + n_tokens,
          config.max_position_embeddings);
    backend.embedding(x, weights.position_embedding, positions, true);
  }
  std::span<const float> inv_freq;
  if (config.rope.type != RopeType::None) inv_freq = state_->rope.for_length(longest + n_tokens);

  Tensor normed = backend.empty({count, hidden});
  Tensor q = backend.empty({count, config.q_dim()});
  Tensor k = backend.empty({count, config.kv_dim()});
  Tensor v = backend.empty({count, config.kv_dim()});
  Tensor attended = backend.empty({count, config.q_dim()});
  Tensor projected = backend.empty({count, hidden});
  Tensor inner = backend.empty({count, config.intermediate_size});
  Tensor inner_up = backend.empty({count, config.intermediate_size});
  const float eps = static_cast<float>(config.norm_eps);

  // Each residual add is fused with the norm that follows it (the next layer's, or the final).
  const size_t layers = weights.layers.size();
  apply_norm(backend, normed, x, layers > 0 ? weights.layers[0].attention_norm : weights.final_norm,
             eps);
  for (size_t l = 0; l < layers; ++l) {
    const DecoderLayer& layer = weights.layers[l];
    project_rope_cache(backend, q, k, v, normed, layer, cache.keys(l), cache.values(l),
                       config.head_dim, positions, inv_freq, batch, n_tokens, n_past, past);
    AttentionShape shape{batch,
                         n_tokens,
                         n_past,
                         config.num_heads,
                         config.num_kv_heads,
                         config.head_dim,
                         attention_scale(config, static_cast<int64_t>(l)),
                         config.sliding_window_for_layer(static_cast<int64_t>(l)),
                         past};
    backend.attention(attended, q, cache.keys(l), cache.values(l), shape);
    apply_linear(backend, projected, attended, layer.o);
    residual_norm(backend, x, projected, normed, layer.mlp_norm, eps);

    const bool plain_gate = layer.gate.weight.defined() && !layer.gate.bias.defined() &&
                            !layer.up.bias.defined() && !layer.gate.lora_a.defined() &&
                            !layer.up.lora_a.defined();
    if (plain_gate) {
      backend.gated_matmul(inner, normed, layer.gate.weight, layer.up.weight, config.activation);
    } else if (layer.gate.weight.defined()) {
      apply_linear(backend, inner, normed, layer.gate);
      apply_linear(backend, inner_up, normed, layer.up);
      backend.gated_activation(inner, inner, inner_up, config.activation);
    } else {
      apply_linear(backend, inner, normed, layer.up);
      backend.activation(inner, config.activation);
    }
    apply_linear(backend, projected, inner, layer.down);
    residual_norm(backend, x, projected, normed,
                  l + 1 < layers ? weights.layers[l + 1].attention_norm : weights.final_norm, eps);
  }
  cache.advance(n_tokens);

  Tensor selected = normed;
  // With one token a sequence (decoding) every row is its sequence's last.
  if (rows == LogitRows::Last && n_tokens > 1) {
    // Gather each sequence's last row with the embedding op, the states acting as the table.
    std::vector<int32_t> last(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) last[b] = static_cast<int32_t>((b + 1) * n_tokens - 1);
    selected = backend.empty({batch, hidden});
    backend.embedding(selected, normed, last, false);
  }
  Tensor logits = backend.empty({selected.rows(), config.vocab_size});
  apply_linear(backend, logits, selected, weights.lm_head);
  step.end();
  return logits;
}

}  // namespace flow2
