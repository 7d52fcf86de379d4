// Binds GPT-2 / DialoGPT checkpoints. Their Conv1D weights are stored [in, out] and attention's
// q, k and v share one c_attn; both are rearranged on load into the common [out, in] layout.
// GGUF files (llama.cpp's names: token_embd, blk.N.attn_qkv, ...) already hold [out, in]
// weights, which are bound as they are (quantized ones stay quantized); only the fused qkv
// rows are split.
#include <fmt/format.h>

#include "model/decoder_weights.h"
#include "model/weight_binder.h"

namespace flow2 {
namespace {

// Columns [begin, begin + count) of a float32 [rows, cols] matrix, transposed to [count, rows].
HostTensor transposed_columns(const HostTensor& source, int64_t begin, int64_t count) {
  const int64_t rows = source.shape[0];
  const int64_t cols = source.shape[1];
  std::vector<float> values = source.to_f32();
  std::vector<float> result(static_cast<size_t>(count * rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < count; ++c) result[c * rows + r] = values[r * cols + begin + c];
  }
  return make_host_tensor(source.name, {count, rows}, result);
}

HostTensor slice_vector(const HostTensor& source, int64_t begin, int64_t count) {
  std::vector<float> values = source.to_f32();
  return make_host_tensor(source.name, {count},
                          std::span<const float>(values).subspan(begin, count));
}

// A Conv1D layer [in, out] as a Linear [out, in].
Linear bind_conv1d(const WeightBinder& binder, const std::string& prefix, int64_t in, int64_t out) {
  const HostTensor& weight = binder.host(prefix + ".weight", {in, out});
  Backend& backend = binder.backend();
  return Linear{backend.upload_weight(transposed_columns(weight, 0, out)),
                binder.bind(prefix + ".bias", {out})};
}

Norm bind_layer_norm(const WeightBinder& binder, const std::string& prefix, int64_t width) {
  return Norm{binder.bind(prefix + ".weight", {width}), binder.bind(prefix + ".bias", {width})};
}

// Rows [begin, begin + count) of a matrix, sharing its bytes (whole rows: whole blocks).
HostTensor row_slice(const HostTensor& source, int64_t begin, int64_t count) {
  const int64_t cols = source.shape[1];
  const uint64_t row_bytes = dtype_bytes(source.dtype, static_cast<uint64_t>(cols));
  HostTensor slice = source;
  slice.shape = {count, cols};
  slice.bytes = source.bytes.subspan(static_cast<size_t>(begin) * row_bytes,
                                     static_cast<size_t>(count) * row_bytes);
  return slice;
}

Linear bind_linear(const WeightBinder& binder, const std::string& prefix, int64_t in, int64_t out) {
  return Linear{binder.bind(prefix + ".weight", {out, in}), binder.bind(prefix + ".bias", {out})};
}

DecoderWeights bind_gguf_gpt2_weights(const WeightBinder& binder, const ModelConfig& config) {
  const int64_t hidden = config.hidden_size;
  const int64_t inner = config.intermediate_size;
  Backend& backend = binder.backend();
  DecoderWeights weights;
  weights.token_embedding = binder.bind("token_embd.weight", {config.vocab_size, hidden});
  weights.position_embedding =
      binder.bind("position_embd.weight", {config.max_position_embeddings, hidden});
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string layer = fmt::format("blk.{}", i);
    DecoderLayer block;
    block.attention_norm = bind_layer_norm(binder, layer + ".attn_norm", hidden);
    const HostTensor& qkv = binder.host(layer + ".attn_qkv.weight", {3 * hidden, hidden});
    const HostTensor& qkv_bias = binder.host(layer + ".attn_qkv.bias", {3 * hidden});
    Linear* parts[] = {&block.q, &block.k, &block.v};
    for (int64_t part = 0; part < 3; ++part) {
      parts[part]->weight = backend.upload_weight(row_slice(qkv, part * hidden, hidden));
      parts[part]->bias = backend.upload_weight(slice_vector(qkv_bias, part * hidden, hidden));
    }
    block.o = bind_linear(binder, layer + ".attn_output", hidden, hidden);
    block.mlp_norm = bind_layer_norm(binder, layer + ".ffn_norm", hidden);
    block.up = bind_linear(binder, layer + ".ffn_up", hidden, inner);
    block.down = bind_linear(binder, layer + ".ffn_down", inner, hidden);
    weights.layers.push_back(std::move(block));
  }
  weights.final_norm = bind_layer_norm(binder, "output_norm", hidden);
  weights.lm_head.weight = config.tie_word_embeddings
                               ? weights.token_embedding
                               : binder.bind("output.weight", {config.vocab_size, hidden});
  return weights;
}

}  // namespace

DecoderWeights bind_gpt2_weights(const WeightStore& store, const ModelConfig& config,
                                 Backend& backend) {
  backend.prepare_weights(store);
  WeightBinder binder(store, backend);
  if (binder.has("token_embd.weight")) return bind_gguf_gpt2_weights(binder, config);
  // Hub checkpoints name tensors "transformer.h.0..."; the original OpenAI exports omit the prefix.
  const std::string root = binder.has("transformer.wte.weight") ? "transformer." : "";
  const int64_t hidden = config.hidden_size;
  const int64_t inner = config.intermediate_size;
  DecoderWeights weights;
  weights.token_embedding = binder.bind(root + "wte.weight", {config.vocab_size, hidden});
  weights.position_embedding =
      binder.bind(root + "wpe.weight", {config.max_position_embeddings, hidden});
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string layer = fmt::format("{}h.{}", root, i);
    DecoderLayer block;
    block.attention_norm = bind_layer_norm(binder, layer + ".ln_1", hidden);
    const HostTensor& qkv = binder.host(layer + ".attn.c_attn.weight", {hidden, 3 * hidden});
    const HostTensor& qkv_bias = binder.host(layer + ".attn.c_attn.bias", {3 * hidden});
    Linear* parts[] = {&block.q, &block.k, &block.v};
    for (int64_t part = 0; part < 3; ++part) {
      parts[part]->weight = backend.upload_weight(transposed_columns(qkv, part * hidden, hidden));
      parts[part]->bias = backend.upload_weight(slice_vector(qkv_bias, part * hidden, hidden));
    }
    block.o = bind_conv1d(binder, layer + ".attn.c_proj", hidden, hidden);
    block.mlp_norm = bind_layer_norm(binder, layer + ".ln_2", hidden);
    block.up = bind_conv1d(binder, layer + ".mlp.c_fc", hidden, inner);
    block.down = bind_conv1d(binder, layer + ".mlp.c_proj", inner, hidden);
    weights.layers.push_back(std::move(block));
  }
  weights.final_norm = bind_layer_norm(binder, root + "ln_f", hidden);
  weights.lm_head.weight = config.tie_word_embeddings
                               ? weights.token_embedding
                               : binder.bind("lm_head.weight", {config.vocab_size, hidden});
  return weights;
}

}  // namespace flow2
