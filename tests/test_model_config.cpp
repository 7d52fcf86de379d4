// config.json parsing for each architecture, as the Hub writes them, and its errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "flow2/error.h"
#include "flow2/model_config.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::string parse_error(const json& document) {
  try {
    parse_model_config(document, "config.json");
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(ModelConfig, TinyLlamaFixture) {
  ModelConfig config = load_model_config(testing::model_path("tiny-llama"));
  EXPECT_EQ(config.family, ModelFamily::Llama);
  EXPECT_EQ(config.architecture, "LlamaForCausalLM");
  EXPECT_EQ(config.num_layers, 3);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.num_heads, 4);
  EXPECT_EQ(config.num_kv_heads, 2);
  EXPECT_EQ(config.head_dim, 16);
  EXPECT_EQ(config.intermediate_size, 160);
  EXPECT_EQ(config.vocab_size, 320);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_EQ(config.rope.type, RopeType::Llama3);
  EXPECT_DOUBLE_EQ(config.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(config.rope.factor, 8.0);
  EXPECT_EQ(config.rope.original_max_position_embeddings, 64);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(config.qkv_bias);
}

TEST(ModelConfig, SmolQwenAndGpt2Fixtures) {
  ModelConfig smol = load_model_config(testing::model_path("tiny-smol"));
  EXPECT_TRUE(smol.tie_word_embeddings);
  EXPECT_EQ(smol.num_kv_heads, 1);
  EXPECT_EQ(smol.rope.type, RopeType::Default);

  ModelConfig qwen = load_model_config(testing::model_path("tiny-qwen2"));
  EXPECT_TRUE(qwen.qkv_bias);
  EXPECT_FALSE(qwen.o_bias);
  EXPECT_EQ(qwen.sliding_window, 0);  // use_sliding_window is false
  EXPECT_DOUBLE_EQ(qwen.norm_eps, 1e-6);

  ModelConfig gpt2 = load_model_config(testing::model_path("tiny-gpt2"));
  EXPECT_EQ(gpt2.family, ModelFamily::Gpt2);
  EXPECT_EQ(gpt2.intermediate_size, 256);  // n_inner null: 4 * n_embd
  EXPECT_EQ(gpt2.activation, Activation::GeluTanh);
  EXPECT_EQ(gpt2.rope.type, RopeType::None);
  EXPECT_TRUE(gpt2.tie_word_embeddings);
  EXPECT_EQ(gpt2.max_position_embeddings, 128);
}

TEST(ModelConfig, Llama31HubConfig) {
  json document = json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "vocab_size": 128256})");
  ModelConfig config = parse_model_config(document, "config.json");
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.kv_dim(), 1024);
  EXPECT_EQ(config.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(config.torch_dtype, "bfloat16");
  EXPECT_EQ(config.bos_token_id, 128000);
}

TEST(ModelConfig, DialoGptConfig) {
  json document = json::parse(R"({
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
    "bos_token_id": 50256, "eos_token_id": 50256, "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2", "n_ctx": 1024, "n_embd": 1024, "n_head": 16, "n_layer": 24,
    "n_positions": 1024, "vocab_size": 50257})");
  ModelConfig config = parse_model_config(document, "config.json");
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.intermediate_size, 4096);
  EXPECT_TRUE(config.scale_attn_weights);
  EXPECT_FALSE(config.scale_attn_by_inverse_layer_idx);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int64_t>{50256}));

  document["n_inner"] = 3000;
  document["activation_function"] = "relu";
  document["scale_attn_weights"] = false;
  config = parse_model_config(document, "config.json");
  EXPECT_EQ(config.intermediate_size, 3000);
  EXPECT_EQ(config.activation, Activation::Relu);
  EXPECT_FALSE(config.scale_attn_weights);
}

TEST(ModelConfig, MistralAndQwenSlidingWindows) {
  json mistral = json::parse(R"({"model_type": "mistral", "vocab_size": 32000,
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": 4096,
    "rope_theta": 10000.0})");
  EXPECT_EQ(parse_model_config(mistral, "c").sliding_window, 4096);
  mistral["sliding_window"] = nullptr;
  EXPECT_EQ(parse_model_config(mistral, "c").sliding_window, 0);

  json qwen = json::parse(R"({"model_type": "qwen2", "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "use_sliding_window": true, "sliding_window": 32,
    "max_window_layers": 2})");
  ModelConfig config = parse_model_config(qwen, "c");
  EXPECT_EQ(config.sliding_window_for_layer(1), 0);
  EXPECT_EQ(config.sliding_window_for_layer(2), 32);
}

TEST(ModelConfig, RopeScalingVariants) {
  json base = json::parse(R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
    "max_position_embeddings": 256, "head_dim": 32, "attention_bias": true, "mlp_bias": true})");
  ModelConfig plain = parse_model_config(base, "c");
  EXPECT_EQ(plain.head_dim, 32);
  EXPECT_TRUE(plain.qkv_bias && plain.o_bias && plain.mlp_bias);
  EXPECT_EQ(plain.rope.type, RopeType::Default);

  base["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  EXPECT_EQ(parse_model_config(base, "c").rope.type, RopeType::Linear);
  base["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  ModelConfig dynamic = parse_model_config(base, "c");
  EXPECT_EQ(dynamic.rope.type, RopeType::Dynamic);
  EXPECT_EQ(dynamic.rope.original_max_position_embeddings, 256);
  base["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  EXPECT_NE(parse_error(base).find("unsupported rope type 'yarn'"), std::string::npos);

  // transformers 5 style: everything under rope_parameters.
  base.erase("rope_scaling");
  base["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1234.0}};
  ModelConfig v5 = parse_model_config(base, "c");
  EXPECT_EQ(v5.rope.type, RopeType::Linear);
  EXPECT_DOUBLE_EQ(v5.rope.theta, 1234.0);
}

TEST(ModelConfig, Errors) {
  json good = json::parse(testing::read_file(testing::model_path("tiny-llama/config.json")));
  json unknown = good;
  unknown["model_type"] = "mamba";
  EXPECT_NE(parse_error(unknown).find("unknown architecture 'mamba'"), std::string::npos);
  json missing = good;
  missing.erase("hidden_size");
  EXPECT_NE(parse_error(missing).find("missing required key 'hidden_size'"), std::string::npos);
  json wrong_type = good;
  wrong_type["num_hidden_layers"] = "three";
  EXPECT_NE(parse_error(wrong_type).find("'num_hidden_layers' must be an integer"),
            std::string::npos);
  json bad_heads = good;
  bad_heads["num_key_value_heads"] = 3;
  EXPECT_NE(parse_error(bad_heads).find("cannot be shared"), std::string::npos);
  EXPECT_NE(parse_error(json::array()).find("expected a JSON object"), std::string::npos);
  json no_type = good;
  no_type.erase("model_type");
  EXPECT_NE(parse_error(no_type).find("missing 'model_type'"), std::string::npos);

  testing::TempDir dir;
  testing::write_file(dir / "config.json", "{\"model_type\": \"llama\",");
  try {
    load_model_config(dir.path());
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("config.json: malformed JSON"), std::string::npos);
  }
  EXPECT_THROW(load_model_config(dir / "absent"), Error);
}

TEST(ModelConfig, GenerationConfigEosWins) {
  testing::TempDir dir;
  std::filesystem::copy(testing::model_path("tiny-smol/config.json"), dir / "config.json");
  testing::write_file(dir / "generation_config.json", R"({"eos_token_id": [7, 9]})");
  EXPECT_EQ(load_model_config(dir.path()).eos_token_ids, (std::vector<int64_t>{7, 9}));
}

}  // namespace
}  // namespace flow2
