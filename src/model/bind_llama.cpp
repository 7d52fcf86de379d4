// Binds Llama-family checkpoints (llama, mistral, qwen2) in Hugging Face naming.
#include <fmt/format.h>

#include "model/decoder_weights.h"
#include "model/weight_binder.h"

namespace flow2 {
namespace {

Linear bind_linear(const WeightBinder& binder, const std::string& prefix, int64_t out, int64_t in,
                   bool bias) {
  return Linear{binder.bind(prefix + ".weight", {out, in}),
                binder.bind_if(bias, prefix + ".bias", {out})};
}

}  // namespace

DecoderWeights bind_llama_weights(const WeightStore& store, const ModelConfig& config,
                                  Backend& backend) {
  backend.prepare_weights(store);
  WeightBinder binder(store, backend);
  const int64_t hidden = config.hidden_size;
  const int64_t inner = config.intermediate_size;
  DecoderWeights weights;
  weights.token_embedding = binder.bind("model.embed_tokens.weight", {config.vocab_size, hidden});
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string layer = fmt::format("model.layers.{}", i);
    const std::string attention = layer + ".self_attn";
    const std::string mlp = layer + ".mlp";
    DecoderLayer block;
    block.attention_norm.weight = binder.bind(layer + ".input_layernorm.weight", {hidden});
    block.q = bind_linear(binder, attention + ".q_proj", config.q_dim(), hidden, config.qkv_bias);
    block.k = bind_linear(binder, attention + ".k_proj", config.kv_dim(), hidden, config.qkv_bias);
    block.v = bind_linear(binder, attention + ".v_proj", config.kv_dim(), hidden, config.qkv_bias);
    block.o = bind_linear(binder, attention + ".o_proj", hidden, config.q_dim(), config.o_bias);
    block.mlp_norm.weight = binder.bind(layer + ".post_attention_layernorm.weight", {hidden});
    block.gate = bind_linear(binder, mlp + ".gate_proj", inner, hidden, config.mlp_bias);
    block.up = bind_linear(binder, mlp + ".up_proj", inner, hidden, config.mlp_bias);
    block.down = bind_linear(binder, mlp + ".down_proj", hidden, inner, config.mlp_bias);
    weights.layers.push_back(std::move(block));
  }
  weights.final_norm.weight = binder.bind("model.norm.weight", {hidden});
  weights.lm_head.weight = config.tie_word_embeddings
                               ? weights.token_embedding
                               : binder.bind("lm_head.weight", {config.vocab_size, hidden});
  return weights;
}

}  // namespace flow2
