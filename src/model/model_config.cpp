#include "flow2/model_config.h"

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

using nlohmann::json;

Activation parse_activation(const std::string& name, const std::string& source) {
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    return Activation::GeluTanh;
  }
  if (name == "gelu") return Activation::GeluErf;
  if (name == "relu") return Activation::Relu;
  fail("{}: unsupported activation function '{}'", source, name);
}

// transformers 5 writes `rope_parameters` (with rope_theta inside); older configs write
// `rope_theta` beside a `rope_scaling` object that may be null.
RopeConfig parse_rope(const json& document, int64_t max_positions, const std::string& source) {
  RopeConfig rope;
  rope.type = RopeType::Default;
  const json* scaling = nullptr;
  if (auto it = document.find("rope_parameters"); it != document.end() && !it->is_null()) {
    check(it->is_object(), "{}: 'rope_parameters' must be an object", source);
    scaling = &*it;
    if (auto theta = optional_number(*it, "rope_theta", source)) rope.theta = *theta;
  }
  if (auto theta = optional_number(document, "rope_theta", source)) rope.theta = *theta;
  if (!scaling) {
    if (auto it = document.find("rope_scaling"); it != document.end() && !it->is_null()) {
      check(it->is_object(), "{}: 'rope_scaling' must be an object or null", source);
      scaling = &*it;
    }
  }
  if (!scaling) return rope;

  const std::string where = source + " rope_scaling";
  auto type = optional_string(*scaling, "rope_type", where);
  if (!type) type = optional_string(*scaling, "type", where);
  std::string name = type.value_or("default");
  if (name == "default") return rope;
  rope.factor = optional_number(*scaling, "factor", where).value_or(1.0);
  check(rope.factor > 0, "{}: 'factor' must be positive", where);
  if (name == "linear") {
    rope.type = RopeType::Linear;
  } else if (name == "dynamic") {
    rope.type = RopeType::Dynamic;
    rope.original_max_position_embeddings =
        optional_int(*scaling, "original_max_position_embeddings", where).value_or(max_positions);
  } else if (name == "llama3") {
    rope.type = RopeType::Llama3;
    rope.low_freq_factor = optional_number(*scaling, "low_freq_factor", where).value_or(1.0);
    rope.high_freq_factor = optional_number(*scaling, "high_freq_factor", where).value_or(4.0);
    auto original = optional_int(*scaling, "original_max_position_embeddings", where);
    check(original.has_value(), "{}: llama3 scaling needs 'original_max_position_embeddings'",
          where);
    rope.original_max_position_embeddings = *original;
    check(rope.high_freq_factor > rope.low_freq_factor,
          "{}: 'high_freq_factor' must exceed 'low_freq_factor'", where);
  } else {
    fail("{}: unsupported rope type '{}' (supported: default, linear, dynamic, llama3)", where,
         name);
  }
  return rope;
}

void parse_llama_family(const json& document, const std::string& source, ModelConfig& config) {
  config.family = ModelFamily::Llama;
  config.vocab_size = required_int(document, "vocab_size", source);
  config.hidden_size = required_int(document, "hidden_size", source);
  config.intermediate_size = required_int(document, "intermediate_size", source);
  config.num_layers = required_int(document, "num_hidden_layers", source);
  config.num_heads = required_int(document, "num_attention_heads", source);
  config.num_kv_heads =
      optional_int(document, "num_key_value_heads", source).value_or(config.num_heads);
  check(config.num_heads > 0, "{}: 'num_attention_heads' must be positive", source);
  config.head_dim =
      optional_int(document, "head_dim", source).value_or(config.hidden_size / config.num_heads);
  config.max_position_embeddings =
      optional_int(document, "max_position_embeddings", source).value_or(2048);
  config.norm_eps = optional_number(document, "rms_norm_eps", source).value_or(1e-6);
  config.activation =
      parse_activation(optional_string(document, "hidden_act", source).value_or("silu"), source);
  config.tie_word_embeddings =
      optional_bool(document, "tie_word_embeddings", source).value_or(false);
  config.rope = parse_rope(document, config.max_position_embeddings, source);

  if (config.model_type == "qwen2") {
    // Qwen2 always has q/k/v biases and no o_proj bias; its window applies only when enabled.
    config.qkv_bias = true;
    if (optional_bool(document, "use_sliding_window", source).value_or(false)) {
      config.sliding_window = optional_int(document, "sliding_window", source).value_or(0);
      config.sliding_window_first_layer =
          optional_int(document, "max_window_layers", source).value_or(0);
    }
  } else {
    bool attention_bias = optional_bool(document, "attention_bias", source).value_or(false);
    config.qkv_bias = attention_bias;
    config.o_bias = attention_bias;
    config.mlp_bias = optional_bool(document, "mlp_bias", source).value_or(false);
    if (config.model_type == "mistral") {
      config.sliding_window = optional_int(document, "sliding_window", source).value_or(0);
    }
  }
}

void parse_gpt2(const json& document, const std::string& source, ModelConfig& config) {
  config.family = ModelFamily::Gpt2;
  config.vocab_size = optional_int(document, "vocab_size", source).value_or(50257);
  config.hidden_size = required_int(document, "n_embd", source);
  config.num_layers = required_int(document, "n_layer", source);
  config.num_heads = required_int(document, "n_head", source);
  check(config.num_heads > 0, "{}: 'n_head' must be positive", source);
  config.num_kv_heads = config.num_heads;
  config.head_dim = config.hidden_size / config.num_heads;
  config.intermediate_size =
      optional_int(document, "n_inner", source).value_or(4 * config.hidden_size);
  config.max_position_embeddings = optional_int(document, "n_positions", source).value_or(1024);
  config.norm_eps = optional_number(document, "layer_norm_epsilon", source).value_or(1e-5);
  config.activation = parse_activation(
      optional_string(document, "activation_function", source).value_or("gelu_new"), source);
  config.tie_word_embeddings =
      optional_bool(document, "tie_word_embeddings", source).value_or(true);
  config.scale_attn_weights = optional_bool(document, "scale_attn_weights", source).value_or(true);
  config.scale_attn_by_inverse_layer_idx =
      optional_bool(document, "scale_attn_by_inverse_layer_idx", source).value_or(false);
  config.qkv_bias = config.o_bias = config.mlp_bias = true;
  config.rope.type = RopeType::None;
}

void check_dimensions(const ModelConfig& config, const std::string& source) {
  auto positive = [&](int64_t value, const char* what) {
    check(value > 0, "{}: {} must be positive, got {}", source, what, value);
  };
  positive(config.vocab_size, "vocab size");
  positive(config.hidden_size, "hidden size");
  positive(config.intermediate_size, "intermediate size");
  positive(config.num_layers, "layer count");
  positive(config.num_kv_heads, "key/value head count");
  positive(config.head_dim, "head dimension");
  positive(config.max_position_embeddings, "max_position_embeddings");
  check(config.num_heads % config.num_kv_heads == 0,
        "{}: {} attention heads cannot be shared by {} key/value heads", source, config.num_heads,
        config.num_kv_heads);
  if (config.family == ModelFamily::Gpt2) {
    check(config.hidden_size % config.num_heads == 0, "{}: n_embd {} is not divisible by n_head {}",
          source, config.hidden_size, config.num_heads);
  }
  if (config.rope.type != RopeType::None) {
    check(config.head_dim % 2 == 0, "{}: RoPE needs an even head dimension, got {}", source,
          config.head_dim);
  }
}

}  // namespace

std::string_view family_name(ModelFamily family) {
  return family == ModelFamily::Gpt2 ? "gpt2" : "llama";
}

ModelConfig parse_model_config(const json& document, const std::string& source) {
  check(document.is_object(), "{}: expected a JSON object", source);
  ModelConfig config;
  auto model_type = optional_string(document, "model_type", source);
  check(model_type.has_value(), "{}: missing 'model_type'", source);
  config.model_type = *model_type;
  if (auto it = document.find("architectures");
      it != document.end() && it->is_array() && !it->empty() && (*it)[0].is_string()) {
    config.architecture = (*it)[0].get<std::string>();
  }
  if (config.model_type == "llama" || config.model_type == "mistral" ||
      config.model_type == "qwen2") {
    parse_llama_family(document, source, config);
  } else if (config.model_type == "gpt2") {
    parse_gpt2(document, source, config);
  } else {
    fail("{}: unknown architecture '{}' (supported: llama, mistral, qwen2, gpt2)", source,
         config.model_type);
  }
  check_dimensions(config, source);
  config.bos_token_id = optional_int(document, "bos_token_id", source);
  config.eos_token_ids = int_or_int_list(document, "eos_token_id", source);
  config.torch_dtype = optional_string(document, "torch_dtype", source)
                           .value_or(optional_string(document, "dtype", source).value_or(""));
  return config;
}

ModelConfig load_model_config(const std::filesystem::path& directory) {
  auto config_path = directory / "config.json";
  check(std::filesystem::exists(config_path), "{}: no config.json in this directory",
        directory.string());
  ModelConfig config = parse_model_config(read_json_file(config_path), config_path.string());
  auto generation_path = directory / "generation_config.json";
  if (std::filesystem::exists(generation_path)) {
    auto generation = read_json_file(generation_path);
    check(generation.is_object(), "{}: expected a JSON object", generation_path.string());
    auto eos = int_or_int_list(generation, "eos_token_id", generation_path.string());
    if (!eos.empty()) config.eos_token_ids = eos;
    if (auto bos = optional_int(generation, "bos_token_id", generation_path.string())) {
      config.bos_token_id = bos;
    }
  }
  return config;
}

}  // namespace flow2
