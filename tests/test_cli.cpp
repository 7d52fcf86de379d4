// The command line on the fixture models, checked against transformers' references and the
// checkpoints' own metadata.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "flow2/generate.h"
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

}  // namespace
}  // namespace flow2
