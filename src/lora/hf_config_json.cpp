#include "lora/hf_config_json.h"

#include "flow2/error.h"

namespace flow2 {

nlohmann::ordered_json hf_config_json(const ModelConfig& c) {
  check(c.family == ModelFamily::Llama,
        "config.json can only be generated for llama-family models");
  check(c.rope.frequency_factors.empty(),
        "llama3 RoPE scaling given as rope_freqs cannot be written as config.json rope_scaling");
  nlohmann::ordered_json config;
  config["architectures"] = {c.architecture};
  config["model_type"] = c.model_type;
  config["vocab_size"] = c.vocab_size;
  config["hidden_size"] = c.hidden_size;
  config["intermediate_size"] = c.intermediate_size;
  config["num_hidden_layers"] = c.num_layers;
  config["num_attention_heads"] = c.num_heads;
  config["num_key_value_heads"] = c.num_kv_heads;
  config["head_dim"] = c.head_dim;
  config["max_position_embeddings"] = c.max_position_embeddings;
  config["rms_norm_eps"] = c.norm_eps;
  config["hidden_act"] = "silu";
  config["rope_theta"] = c.rope.theta;
  if (c.rope.type == RopeType::Linear) {
    config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope.factor}};
  } else {
    check(c.rope.type == RopeType::Default || c.rope.type == RopeType::None,
          "this RoPE scaling cannot be written as config.json");
    config["rope_scaling"] = nullptr;
  }
  if (c.model_type != "qwen2") {
    config["attention_bias"] = c.qkv_bias;
    config["mlp_bias"] = c.mlp_bias;
  }
  if (c.sliding_window > 0) {
    config["sliding_window"] = c.sliding_window;
    if (c.model_type == "qwen2") {
      config["use_sliding_window"] = true;
      config["max_window_layers"] = c.sliding_window_first_layer;
    }
  }
  config["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.bos_token_id) config["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) config["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) config["eos_token_id"] = c.eos_token_ids;
  config["torch_dtype"] = "float32";
  return config;
}

}  // namespace flow2
