// The shape and hyper-parameters of a decoder-only transformer, read from a Hugging Face
// config.json (llama, mistral, qwen2, gpt2) and generation_config.json.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace flow2 {

// How the architectures differ in their weights: the llama family (llama, mistral, qwen2) uses
// RMSNorm, RoPE and a gated MLP; gpt2 uses LayerNorm with bias, learned positions and Conv1D.
enum class ModelFamily { Llama, Gpt2 };

enum class Activation { Silu, GeluTanh, GeluErf, Relu };

enum class RopeType { None, Default, Linear, Dynamic, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::None;
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
  // Per-frequency divisors (GGUF's rope_freqs tensor, llama.cpp's form of llama3 scaling).
  std::vector<float> frequency_factors;
};

struct ModelConfig {
  std::string model_type;    // "llama", "mistral", "qwen2", "gpt2"
  std::string architecture;  // "LlamaForCausalLM", ...
  ModelFamily family = ModelFamily::Llama;

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;

  double norm_eps = 1e-5;
  Activation activation = Activation::Silu;
  bool qkv_bias = false;  // q, k and v projections carry a bias
  bool o_bias = false;
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  RopeConfig rope;
  // GPT-2: divide attention scores by sqrt(head_dim) / also by the layer index + 1.
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  // Mistral / Qwen2 sliding-window attention: 0 means none. Qwen2 applies it from layer
  // `sliding_window_first_layer` on.
  int64_t sliding_window = 0;
  int64_t sliding_window_first_layer = 0;

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype;  // as declared; the tensors' own dtypes are what counts

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  int64_t sliding_window_for_layer(int64_t layer) const {
    return layer >= sliding_window_first_layer ? sliding_window : 0;
  }
};

// Parses a config.json document; `source` names it in errors.
ModelConfig parse_model_config(const nlohmann::json& document, const std::string& source);

// Reads `directory`/config.json and, when present, generation_config.json (its eos ids win).
ModelConfig load_model_config(const std::filesystem::path& directory);

std::string_view family_name(ModelFamily family);

}  // namespace flow2
