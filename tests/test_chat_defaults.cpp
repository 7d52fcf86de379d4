// Chat prompts for models: the family defaults render the formats they are named after (checked
// against the reference renderings of real templates of that format), and generate --chat
// feeds the rendered prompt to the model.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "flow2/chat.h"
#include "flow2/chat_template.h"
#include "flow2/model.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::vector<ChatMessage> messages_of(const json& row) {
  std::vector<ChatMessage> messages;
  for (const auto& message : row.contains("messages") ? row["messages"] : row["chat"]) {
    messages.push_back({message["role"], message["content"]});
  }
  return messages;
}

// Renders every reference conversation of `tokenizer_dir` with a default template, which must
// give what the real template of that format gave.
void expect_default_matches(DefaultChatFormat format, const std::string& tokenizer_dir,
                            const TokenizerConfig& config, const ModelConfig& model_config,
                            const Tokenizer& tokenizer) {
  TokenizerConfig without_template = config;
  without_template.chat_template.reset();
  ChatFormatter formatter(without_template, model_config, tokenizer);
  ASSERT_TRUE(formatter.uses_default());
  ASSERT_EQ(default_chat_format(model_config, tokenizer), format);
  std::ifstream stream(testing::data_path("tokenizers/" + tokenizer_dir + "/chat_expected.jsonl"));
  int rows = 0;
  for (std::string line; std::getline(stream, line); ++rows) {
    json row = json::parse(line);
    bool generation = row.value("add_generation_prompt", false);
    EXPECT_EQ(formatter.render(messages_of(row), generation), row["text"].get<std::string>());
  }
  EXPECT_GT(rows, 0);
}

TEST(ChatDefaults, Llama3FormatMatchesTheLlama31Template) {
  auto directory = testing::data_path("tokenizers/llama3_1");
  Tokenizer tokenizer = Tokenizer::from_file(directory / "tokenizer.json");
  ModelConfig config = load_model_config(testing::model_path("tiny-llama"));
  expect_default_matches(DefaultChatFormat::Llama3, "llama3_1", load_tokenizer_config(directory),
                         config, tokenizer);
}

TEST(ChatDefaults, ChatMlMatchesTheTinyModelsTemplate) {
  auto model = testing::model_path("tiny-llama");
  Tokenizer tokenizer = Tokenizer::from_file(model / "tokenizer.json");
  expect_default_matches(DefaultChatFormat::ChatMl, "tiny", load_tokenizer_config(model),
                         load_model_config(model), tokenizer);
}

TEST(ChatDefaults, DialoGptJoinsTurnsWithEos) {
  auto model = testing::model_path("tiny-gpt2");
  Tokenizer tokenizer = Tokenizer::from_file(model / "tokenizer.json");
  ModelConfig config = load_model_config(model);
  TokenizerConfig tokenizer_config;  // as DialoGPT ships: no template
  tokenizer_config.eos_token = "<|endoftext|>";
  ChatFormatter formatter(tokenizer_config, config, tokenizer);
  EXPECT_TRUE(formatter.uses_default());
  EXPECT_EQ(
      formatter.render({{"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "How?"}}, true),
      "Hi there<|endoftext|>Hello!<|endoftext|>How?<|endoftext|>");
}

TEST(ChatDefaults, ModelTemplateWins) {
  auto model = testing::model_path("tiny-llama");
  Tokenizer tokenizer = Tokenizer::from_file(model / "tokenizer.json");
  TokenizerConfig config = load_tokenizer_config(model);
  config.chat_template = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}";
  ChatFormatter formatter(config, load_model_config(model), tokenizer);
  EXPECT_FALSE(formatter.uses_default());
  EXPECT_EQ(formatter.render({{"user", "a"}, {"assistant", "b"}}, false), "[user]a[assistant]b");
}

TEST(ChatDefaults, GenerateChatFeedsTheRenderedPrompt) {
  auto model = testing::model_path("tiny-llama");
  Tokenizer tokenizer = Tokenizer::from_file(model / "tokenizer.json");
  std::string expected_prompt =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
      "<|im_start|>assistant\n";
  auto result = testing::run_cli("generate --model " + model.string() +
                                 " --chat --system 'Be brief.' --prompt 'What is 2+2?' "
                                 "-n 4 --ignore-eos --json");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(json::parse(result.stdout_text)["prompt_tokens"],
            tokenizer.encode(expected_prompt).size());
}

}  // namespace
}  // namespace flow2
