#include "random_checkpoint.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "flow2/atomic_file.h"
#include "flow2/error.h"
#include "flow2/safetensors.h"

namespace flow2::bench {

LlamaShape llama_shape(const std::string& name) {
  if (name == "smollm2-135m") return {name, 49152, 576, 1536, 30, 9, 3, true};
  if (name == "llama3.2-1b") return {name, 128256, 2048, 8192, 16, 32, 8, true};
  fail("unknown model shape '{}' (smollm2-135m, llama3.2-1b)", name);
}

void write_random_llama(const std::filesystem::path& directory, const LlamaShape& shape,
                        uint64_t seed) {
  std::filesystem::create_directories(directory);
  const int64_t head_dim = shape.hidden_size / shape.num_heads;
  std::vector<std::pair<std::string, Shape>> layout = {
      {"model.embed_tokens.weight", {shape.vocab_size, shape.hidden_size}},
      {"model.norm.weight", {shape.hidden_size}}};
  if (!shape.tie_word_embeddings) {
    layout.push_back({"lm_head.weight", {shape.vocab_size, shape.hidden_size}});
  }
  for (int64_t i = 0; i < shape.num_layers; ++i) {
    std::string p = fmt::format("model.layers.{}.", i);
    layout.push_back({p + "input_layernorm.weight", {shape.hidden_size}});
    layout.push_back({p + "post_attention_layernorm.weight", {shape.hidden_size}});
    layout.push_back(
        {p + "self_attn.q_proj.weight", {shape.num_heads * head_dim, shape.hidden_size}});
    layout.push_back(
        {p + "self_attn.k_proj.weight", {shape.num_kv_heads * head_dim, shape.hidden_size}});
    layout.push_back(
        {p + "self_attn.v_proj.weight", {shape.num_kv_heads * head_dim, shape.hidden_size}});
    layout.push_back(
        {p + "self_attn.o_proj.weight", {shape.hidden_size, shape.num_heads * head_dim}});
    layout.push_back({p + "mlp.gate_proj.weight", {shape.intermediate_size, shape.hidden_size}});
    layout.push_back({p + "mlp.up_proj.weight", {shape.intermediate_size, shape.hidden_size}});
    layout.push_back({p + "mlp.down_proj.weight", {shape.hidden_size, shape.intermediate_size}});
  }
  std::mt19937_64 rng(seed);
  std::vector<std::vector<float>> storage;
  std::vector<HostTensor> tensors;
  for (const auto& [name, tensor_shape] : layout) {
    // Norm weights near 1, matrices scaled by 1/sqrt(fan-in): activations stay in range.
    bool is_vector = tensor_shape.size() == 1;
    float scale = is_vector ? 0.1f : 1.0f / std::sqrt(static_cast<float>(tensor_shape[1]));
    std::normal_distribution<float> normal(is_vector ? 1.0f : 0.0f, scale);
    std::vector<float> values(static_cast<size_t>(shape_numel(tensor_shape)));
    for (auto& v : values) v = normal(rng);
    storage.push_back(std::move(values));
    tensors.push_back(HostTensor{name, DType::F32, tensor_shape,
                                 std::as_bytes(std::span<const float>(storage.back())), nullptr});
  }
  write_safetensors(directory / "model.safetensors", tensors, {{"format", "pt"}});
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"vocab_size", shape.vocab_size},
                           {"hidden_size", shape.hidden_size},
                           {"intermediate_size", shape.intermediate_size},
                           {"num_hidden_layers", shape.num_layers},
                           {"num_attention_heads", shape.num_heads},
                           {"num_key_value_heads", shape.num_kv_heads},
                           {"max_position_embeddings", 8192},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 100000.0},
                           {"tie_word_embeddings", shape.tie_word_embeddings},
                           {"torch_dtype", "float32"}};
  write_file_atomically(directory / "config.json", config.dump(2));
}

}  // namespace flow2::bench
