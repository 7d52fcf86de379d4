// The command line on the fixture models, checked against transformers' references and the
// checkpoints' own metadata.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "flow2/backend.h"
#include "flow2/build_info.h"
#include "flow2/generate.h"
#include "flow2/gguf.h"
#include "flow2/model.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::string join_ids(const std::vector<int64_t>& ids, size_t begin, size_t end) {
  std::string text;
  for (size_t i = begin; i < end; ++i) {
    if (i > begin) text += ',';
    text += std::to_string(ids[i]);
  }
  return text;
}

TEST(Cli, InfoReportsTheShardedCheckpoint) {
  auto directory = testing::model_path("tiny-llama-sharded");
  auto result = testing::run_cli("info --json " + directory.string());
  ASSERT_EQ(result.status, 0) << result.output;
  json info = json::parse(result.stdout_text);
  json index = json::parse(testing::read_file(directory / "model.safetensors.index.json"));
  EXPECT_EQ(info["parameters"], index["metadata"]["total_parameters"]);
  EXPECT_EQ(info["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(info["layers"], 3);
  EXPECT_EQ(info["hidden_size"], 64);
  EXPECT_EQ(info["heads"], 4);
  EXPECT_EQ(info["kv_heads"], 2);
  EXPECT_EQ(info["vocab_size"], 320);
  EXPECT_EQ(info["dtype"], "F32");
  EXPECT_EQ(info["tied_embeddings"], false);
  EXPECT_EQ(info["files"].size(), 8u);
  uint64_t bytes = 0;
  for (const auto& file : info["files"])
    bytes += std::filesystem::file_size(file.get<std::string>());
  EXPECT_EQ(info["bytes_on_disk"], bytes);
}

TEST(Cli, InfoOnBf16AndTiedModels) {
  auto bf16 = testing::run_cli("info --json " + testing::model_path("tiny-llama-bf16").string());
  ASSERT_EQ(bf16.status, 0) << bf16.output;
  EXPECT_EQ(json::parse(bf16.stdout_text)["dtype"], "BF16");
  auto smol = testing::run_cli("info --json " + testing::model_path("tiny-smol").string());
  ASSERT_EQ(smol.status, 0) << smol.output;
  json info = json::parse(smol.stdout_text);
  EXPECT_EQ(info["tied_embeddings"], true);
  // Tied: the embedding is counted once and there is no lm_head in the file.
  int64_t expected = 320 * 48 + 48 + 2 * (2 * 48 + 48 * 48 * 2 + 16 * 48 * 2 + 3 * 128 * 48);
  EXPECT_EQ(info["parameters"], expected);
  auto text = testing::run_cli("info " + testing::model_path("tiny-gpt2").string());
  ASSERT_EQ(text.status, 0);
  EXPECT_NE(text.output.find("GPT2LMHeadModel"), std::string::npos);
}

TEST(Cli, GenerateMatchesTransformersGreedyOutput) {
  for (const char* name : {"tiny-llama", "tiny-gpt2", "tiny-qwen2"}) {
    auto directory = testing::model_path(name);
    auto reference = SafetensorsFile::open(directory / "reference.safetensors");
    auto prompt = reference.get("gen_prompt").to_i64();
    auto output = reference.get("gen_output").to_i64();
    auto result = testing::run_cli("generate --model " + directory.string() + " --prompt-ids " +
                                   join_ids(prompt, 0, prompt.size()) +
                                   " --max-tokens 16 --temp 0 --ignore-eos --json");
    ASSERT_EQ(result.status, 0) << result.output;
    json out = json::parse(result.stdout_text);
    std::vector<int64_t> expected(output.begin() + prompt.size(), output.end());
    EXPECT_EQ(out["ids"].get<std::vector<int64_t>>(), expected) << name;
    EXPECT_EQ(out["prompt_tokens"], prompt.size());
    EXPECT_EQ(out["generated_tokens"], 16);
    EXPECT_GT(out["decode_tok_s"].get<double>(), 0.0);
  }
}

// --device picks the backend: auto is CUDA when a GPU is usable; asking for CUDA without one is
// an error (exit status 1) that says so; the greedy tokens are the same everywhere.
TEST(Cli, DeviceSelection) {
  const std::string command = "generate --model " + testing::model_path("tiny-llama").string() +
                              " --prompt-ids 5,6,7 --max-tokens 6 --temp 0 --ignore-eos --json";
  auto cpu = testing::run_cli(command + " --device cpu");
  ASSERT_EQ(cpu.status, 0) << cpu.output;
  auto ids = json::parse(cpu.stdout_text)["ids"];
  auto automatic = testing::run_cli(command + " --device auto");
  ASSERT_EQ(automatic.status, 0) << automatic.output;
  EXPECT_EQ(json::parse(automatic.stdout_text)["ids"], ids);
  auto cuda = testing::run_cli(command + " --device cuda");
  if (cuda_device_count() == 0) {
    EXPECT_EQ(cuda.status, 1);
    EXPECT_NE(cuda.output.find("CUDA was asked for"), std::string::npos) << cuda.output;
  } else {
    ASSERT_EQ(cuda.status, 0) << cuda.output;
    EXPECT_EQ(json::parse(cuda.stdout_text)["ids"], ids);
  }
  EXPECT_EQ(testing::run_cli(command + " --device tpu").status, 1);
}

TEST(Cli, GenerateStopsAtEos) {
  // Greedy generation that runs into an eos id stops there and includes it.
  auto directory = testing::model_path("tiny-llama");
  auto result = testing::run_cli("generate --model " + directory.string() +
                                 " --prompt-ids 5,6,7 --max-tokens 200 --json");
  ASSERT_EQ(result.status, 0) << result.output;
  json out = json::parse(result.stdout_text);
  auto ids = out["ids"].get<std::vector<int64_t>>();
  ASSERT_FALSE(ids.empty());
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_TRUE(ids[i] != 2 && ids[i] != 3);
  if (out["stop_reason"] == "stop_id") {
    EXPECT_TRUE(ids.back() == 2 || ids.back() == 3);
  } else {
    EXPECT_EQ(ids.size(), 200u);
  }
}

TEST(Cli, PerplexityMatchesReferenceLogits) {
  auto directory = testing::model_path("tiny-qwen2");
  auto reference = SafetensorsFile::open(directory / "reference.safetensors");
  auto ids = reference.get("input_ids").to_i64();
  auto logits = reference.get("logits").to_f32();
  const size_t length = 24, vocab = 320;
  double nll = 0;
  for (size_t t = 0; t + 1 < length; ++t) {
    nll -= log_probability(std::span<const float>(logits).subspan(t * vocab, vocab),
                           static_cast<int32_t>(ids[t + 1]));
  }
  nll /= length - 1;
  auto result = testing::run_cli("perplexity --model " + directory.string() + " --ids " +
                                 join_ids(ids, 0, length) + " --json");
  ASSERT_EQ(result.status, 0) << result.output;
  json out = json::parse(result.stdout_text);
  EXPECT_EQ(out["tokens"], 24);
  EXPECT_NEAR(out["nll"].get<double>(), nll, 1e-4);
  EXPECT_NEAR(out["perplexity"].get<double>(), std::exp(nll), std::exp(nll) * 1e-4);
}

// A llama checkpoint with random weights whose hidden size is a whole number of 256-element
// K-quant blocks while the MLP width (320) is not, with tiny-llama's tokenizer.
void write_wide_llama(const std::filesystem::path& directory) {
  std::filesystem::create_directories(directory);
  const int64_t hidden = 256, intermediate = 320, vocab = 320, heads = 4, kv_heads = 2;
  const int64_t head_dim = hidden / heads;
  std::vector<std::pair<std::string, Shape>> layout = {
      {"model.embed_tokens.weight", {vocab, hidden}},
      {"model.norm.weight", {hidden}},
      {"lm_head.weight", {vocab, hidden}}};
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    layout.push_back({p + "input_layernorm.weight", {hidden}});
    layout.push_back({p + "post_attention_layernorm.weight", {hidden}});
    layout.push_back({p + "self_attn.q_proj.weight", {heads * head_dim, hidden}});
    layout.push_back({p + "self_attn.k_proj.weight", {kv_heads * head_dim, hidden}});
    layout.push_back({p + "self_attn.v_proj.weight", {kv_heads * head_dim, hidden}});
    layout.push_back({p + "self_attn.o_proj.weight", {hidden, heads * head_dim}});
    layout.push_back({p + "mlp.gate_proj.weight", {intermediate, hidden}});
    layout.push_back({p + "mlp.up_proj.weight", {intermediate, hidden}});
    layout.push_back({p + "mlp.down_proj.weight", {hidden, intermediate}});
  }
  std::vector<std::vector<float>> storage;
  std::vector<HostTensor> tensors;
  uint64_t seed = 100;
  for (const auto& [name, shape] : layout) {
    // Norm weights near 1, matrices scaled by 1/sqrt(fan-in), the embedding by 1.
    const bool vector = shape.size() == 1;
    std::vector<float> values = testing::random_values(
        static_cast<size_t>(shape_numel(shape)), seed++,
        vector ? 0.1f : (name.find("embed") != std::string::npos ? 1.0f : 1.0f / 16));
    if (vector) {
      for (auto& v : values) v += 1.0f;
    }
    storage.push_back(std::move(values));
    tensors.push_back(HostTensor{name, DType::F32, shape,
                                 std::as_bytes(std::span<const float>(storage.back())), nullptr});
  }
  write_safetensors(directory / "model.safetensors", tensors, {{"format", "pt"}});
  json config = {{"architectures", {"LlamaForCausalLM"}},
                 {"model_type", "llama"},
                 {"vocab_size", vocab},
                 {"hidden_size", hidden},
                 {"intermediate_size", intermediate},
                 {"num_hidden_layers", 2},
                 {"num_attention_heads", heads},
                 {"num_key_value_heads", kv_heads},
                 {"max_position_embeddings", 128},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0},
                 {"tie_word_embeddings", false},
                 {"bos_token_id", 1},
                 {"eos_token_id", 2},
                 {"torch_dtype", "float32"}};
  testing::write_file(directory / "config.json", config.dump(2));
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(testing::model_path("tiny-llama") / file, directory / file);
  }
}

std::vector<float> logits_of(const std::filesystem::path& model_path,
                             const std::vector<int32_t>& ids) {
  auto backend = make_cpu_backend();
  auto model = Model::load(open_checkpoint(model_path), *backend);
  KVCache cache = model->make_cache(1, static_cast<int>(ids.size()));
  return backend->to_host(model->forward(ids, 1, cache));
}

// flow2 convert --type q4_k/q5_k/q6_k: rows of 256 become K blocks, the MLP's down projection
// (rows of 320) falls back to a 32-element type, the norms stay F32; the GGUF loads and its
// logits stay close to the float32 model's, closer with more bits.
TEST(Cli, ConvertWritesKQuantizedModelsThatLoad) {
  testing::TempDir dir;
  write_wide_llama(dir / "wide");
  const std::vector<int32_t> ids = {1, 17, 42, 99, 250, 7, 3, 180, 64, 5, 300, 11};
  const std::vector<float> reference = logits_of(dir / "wide", ids);
  double spread = 0.0;
  for (float v : reference) spread += v * v;
  spread = std::sqrt(spread / static_cast<double>(reference.size()));
  ASSERT_GT(spread, 0.3);

  struct Case {
    std::string type;
    DType dtype, fallback;
    std::string counts;
    double bound;  // largest logit error, relative to the logits' RMS
  };
  const Case cases[] = {{"q4_k", DType::Q4_K, DType::Q4_1, "5 F32, 2 Q4_1, 14 Q4_K", 1.3},
                        {"q5_k", DType::Q5_K, DType::Q8_0, "5 F32, 14 Q5_K, 2 Q8_0", 0.6},
                        {"q6_k", DType::Q6_K, DType::Q8_0, "5 F32, 14 Q6_K, 2 Q8_0", 0.3}};
  std::map<std::string, double> errors;
  double previous = INFINITY;
  for (const Case& c : cases) {
    const auto path = dir / (c.type + ".gguf");
    auto result = testing::run_cli("convert --model " + (dir / "wide").string() + " --out " +
                                   path.string() + " --type " + c.type);
    ASSERT_EQ(result.status, 0) << result.output;
    // 14 matrices with rows of 256, 2 down projections, 5 norms.
    EXPECT_NE(result.stdout_text.find("(" + c.counts + " tensors)"), std::string::npos)
        << result.stdout_text;
    auto file = GgufFile::open(path);
    for (const auto& tensor : file.tensors()) {
      if (tensor.shape.size() == 1) {
        EXPECT_EQ(tensor.dtype, DType::F32) << tensor.name;
      } else if (tensor.name.find("ffn_down") != std::string::npos) {
        EXPECT_EQ(tensor.dtype, c.fallback) << tensor.name;
      } else {
        EXPECT_EQ(tensor.dtype, c.dtype) << tensor.name;
      }
    }
    const double error = testing::max_abs_difference(logits_of(path, ids), reference) / spread;
    errors[c.type] = error;
    EXPECT_LE(error, c.bound) << c.type;
    EXPECT_LT(error, previous) << c.type;
    previous = error;
  }
  // The 32-element types for comparison: Q4_K is about as close as Q4_1 (same bits per
  // weight plus the shared scale), and no K type beats Q8_0.
  for (const std::string type : {"q4_1", "q8_0"}) {
    const auto path = dir / (type + ".gguf");
    auto result = testing::run_cli("convert --model " + (dir / "wide").string() + " --out " +
                                   path.string() + " --type " + type);
    ASSERT_EQ(result.status, 0) << result.output;
    errors[type] = testing::max_abs_difference(logits_of(path, ids), reference) / spread;
  }
  for (const auto& [type, error] : errors) RecordProperty(type, fmt::format("{:.4f}", error));
  EXPECT_LT(errors["q4_k"], 1.25 * errors["q4_1"]);
  EXPECT_GT(errors["q6_k"], errors["q8_0"]);
}

TEST(Cli, ConvertRejectsUnknownTypes) {
  testing::TempDir dir;
  auto result = testing::run_cli("convert --model " + testing::model_path("tiny-llama").string() +
                                 " --out " + (dir / "x.gguf").string() + " --type q3_k");
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("q6_k"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace flow2
