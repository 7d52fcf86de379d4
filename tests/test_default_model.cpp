// The default model, SmolLM2-135M-Instruct as the Q4_1 GGUF that llama.cpp's converter made
// (fetched from PyPI by scripts/fetch-default-model into the cache): it answers, chats with
// memory of earlier turns, and predicts plain English well.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend_list.h"
#include "cli_runner.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/model.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::string default_model() {
  static std::string path = [] {
    std::string command = std::string(FLOW2_SOURCE_DIR) + "/scripts/fetch-default-model";
    std::FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    char buffer[512];
    while (pipe && std::fgets(buffer, sizeof(buffer), pipe)) output += buffer;
    int status = pipe ? pclose(pipe) : -1;
    while (!output.empty() && output.back() == '\n') output.pop_back();
    return status == 0 ? output : std::string();
  }();
  return path;
}

class DefaultModel : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = default_model();
    ASSERT_FALSE(model_.empty()) << "scripts/fetch-default-model failed (it needs PyPI)";
  }
  std::string model_;
};

TEST_F(DefaultModel, GgufMetadataDescribesSmolLm2) {
  Checkpoint checkpoint = open_checkpoint(model_);
  EXPECT_EQ(checkpoint.config.num_layers, 30);
  EXPECT_EQ(checkpoint.config.hidden_size, 576);
  EXPECT_EQ(checkpoint.config.num_heads, 9);
  EXPECT_EQ(checkpoint.config.num_kv_heads, 3);
  EXPECT_EQ(checkpoint.config.vocab_size, 49152);
  EXPECT_TRUE(checkpoint.config.tie_word_embeddings);
  Tokenizer tokenizer = *checkpoint_tokenizer(checkpoint);
  EXPECT_EQ(tokenizer.token_to_id("<|im_end|>"), 2);
  // Byte-level BPE decodes back to the very text it encoded.
  std::ifstream corpus(testing::data_path("tokenizers/corpus.jsonl"));
  for (std::string line; std::getline(corpus, line);) {
    std::string text = json::parse(line).get<std::string>();
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), text) << line;
  }
  // Digits split one by one (tokenizer.ggml.pre "smollm").
  EXPECT_EQ(tokenizer.encode("2026").size(), 4u);
}

TEST_F(DefaultModel, AnswersWithParis) {
  auto result = testing::run_cli("generate --model " + model_ +
                                 " --chat --prompt 'What is the capital of France?' --temp 0 "
                                 "--json");
  ASSERT_EQ(result.status, 0) << result.output;
  json out = json::parse(result.stdout_text);
  EXPECT_NE(out["text"].get<std::string>().find("Paris"), std::string::npos) << out["text"];
  EXPECT_EQ(out["stop_reason"], "stop_id");
}

TEST_F(DefaultModel, ChatKeepsTheConversation) {
  auto result = testing::run_cli("chat --model " + model_ + " --temp 0 -n 40",
                                 "Remember this secret word: banana.\nWhat is the secret word?\n");
  ASSERT_EQ(result.status, 0) << result.output;
  // The second reply can only know the word from the first turn.
  size_t first_line_end = result.stdout_text.find('\n');
  ASSERT_NE(first_line_end, std::string::npos) << result.stdout_text;
  std::string second_reply = result.stdout_text.substr(first_line_end + 1);
  EXPECT_NE(second_reply.find("banana"), std::string::npos) << result.stdout_text;
}

// On a GPU the model computes with bf16 keys and values and tensor-core prompts, yet greedy
// decoding must choose what the CPU chooses, token for token, over a whole chat answer.
TEST_F(DefaultModel, GreedyTokensOnCudaAreTheCpus) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  const std::string command = "generate --model " + model_ +
                              " --chat --prompt 'Name the planets of the solar system.' --temp 0 "
                              "-n 64 --json --device ";
  auto cpu = testing::run_cli(command + "cpu");
  auto gpu = testing::run_cli(command + "cuda");
  ASSERT_EQ(cpu.status, 0) << cpu.output;
  ASSERT_EQ(gpu.status, 0) << gpu.output;
  const json cpu_out = json::parse(cpu.stdout_text), gpu_out = json::parse(gpu.stdout_text);
  EXPECT_EQ(gpu_out["ids"], cpu_out["ids"])
      << "cpu: " << cpu_out["text"] << "\ncuda: " << gpu_out["text"];
  EXPECT_GE(cpu_out["ids"].size(), 16u);
}

TEST_F(DefaultModel, PlainEnglishPerplexityIsLow) {
  auto result = testing::run_cli("perplexity --model " + model_ + " --file " +
                                 testing::data_path("text/english.txt").string() + " --json");
  ASSERT_EQ(result.status, 0) << result.output;
  json out = json::parse(result.stdout_text);
  EXPECT_GT(out["tokens"].get<int>(), 150);
  EXPECT_LT(out["perplexity"].get<double>(), 30.0);
  EXPECT_GT(out["perplexity"].get<double>(), 1.0);
}

// QLoRA on the Q4_1 base: one epoch on the quotes examples lowers the held-out loss, and the
// tuned model answers a quote request the way the examples do: "quote" - Author.
TEST_F(DefaultModel, QuotesFineTuneLowersValidationLossAndSetsTheStyle) {
  const std::string data = std::string(FLOW2_SOURCE_DIR) + "/examples/data/quotes_train.jsonl";
  const auto out =
      std::filesystem::temp_directory_path() / ("flow2_quotes_" + std::to_string(::getpid()));
  std::filesystem::remove_all(out);
  const std::string split = " --data " + data + " --split valid --val-split 0.2 --json";
  auto before = testing::run_cli("eval --model " + model_ + split);
  ASSERT_EQ(before.status, 0) << before.output;
  auto tune =
      testing::run_cli("finetune --model " + model_ + " --data " + data + " --out " + out.string() +
                       " --targets all-linear --learning-rate 1e-3 --batch-size 2"
                       " --epochs 1 --val-split 0.2 --progress off");
  ASSERT_EQ(tune.status, 0) << tune.output;
  auto after = testing::run_cli("eval --model " + model_ + " --adapter " + out.string() + split);
  ASSERT_EQ(after.status, 0) << after.output;
  const double loss_before = json::parse(before.stdout_text)["loss"].get<double>();
  const double loss_after = json::parse(after.stdout_text)["loss"].get<double>();
  EXPECT_LT(loss_after, loss_before - 0.1);
  std::printf("quotes: validation loss %.3f -> %.3f\n", loss_before, loss_after);

  auto answer = testing::run_cli("generate --model " + model_ + " --adapter " + out.string() +
                                 " --chat --prompt 'Give me an inspirational quote about "
                                 "patience.' --temp 0 -n 40 --json");
  ASSERT_EQ(answer.status, 0) << answer.output;
  const std::string text = json::parse(answer.stdout_text)["text"].get<std::string>();
  EXPECT_EQ(text.rfind("\"", 0), 0u) << text;                // opens with the quotation
  EXPECT_NE(text.find("\" - "), std::string::npos) << text;  // then the author
  std::filesystem::remove_all(out);
}

}  // namespace
}  // namespace flow2
