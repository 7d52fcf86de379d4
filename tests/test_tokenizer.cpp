// tokenizer.json against the reference Rust `tokenizers` library: every row of
// tests/data/tokenizers/*/expected.jsonl (ids, ids with special tokens, tokens, decoded text)
// and the ids of every rendered chat in chat_expected.jsonl.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "flow2/tokenizer.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::vector<json> read_jsonl(const std::filesystem::path& path) {
  std::vector<json> rows;
  std::ifstream stream(path);
  for (std::string line; std::getline(stream, line);) {
    if (!line.empty()) rows.push_back(json::parse(line));
  }
  return rows;
}

std::filesystem::path tokenizer_file(const std::string& name) {
  // The tiny models' tokenizer lives beside them.
  if (name == "tiny") return testing::model_path("tiny-llama/tokenizer.json");
  return testing::data_path("tokenizers/" + name + "/tokenizer.json");
}

class ReferenceTokenizer : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {}
  Tokenizer load() const { return Tokenizer::from_file(tokenizer_file(GetParam())); }
};

TEST_P(ReferenceTokenizer, MatchesEveryCorpusRow) {
  Tokenizer tokenizer = load();
  auto rows = read_jsonl(testing::data_path("tokenizers/" + GetParam() + "/expected.jsonl"));
  ASSERT_EQ(rows.size(), 51u);
  int failures = 0;
  for (const auto& row : rows) {
    const std::string text = row["text"].get<std::string>();
    auto expected_ids = row["ids"].get<std::vector<int32_t>>();
    auto ids = tokenizer.encode(text);
    EXPECT_EQ(ids, expected_ids) << "text: " << row["text"].dump();
    EXPECT_EQ(tokenizer.encode_with_tokens(text).tokens,
              row["tokens"].get<std::vector<std::string>>())
        << "text: " << row["text"].dump();
    // The tiny tokenizer's rows hold only ids and tokens.
    if (row.contains("ids_with_special")) {
      EXPECT_EQ(tokenizer.encode(text, true), row["ids_with_special"].get<std::vector<int32_t>>())
          << "text: " << row["text"].dump();
    }
    if (row.contains("decoded")) {
      EXPECT_EQ(tokenizer.decode(expected_ids), row["decoded"].get<std::string>())
          << "text: " << row["text"].dump();
    }
    if (::testing::Test::HasFailure() && ++failures > 5) break;  // keep the log readable
  }
}

// Only the tokenizers with a chat template have chat references.
class ChatTokenizer : public ReferenceTokenizer {};

TEST_P(ChatTokenizer, EncodesRenderedChats) {
  auto path = testing::data_path("tokenizers/" + GetParam() + "/chat_expected.jsonl");
  Tokenizer tokenizer = load();
  auto rows = read_jsonl(path);
  ASSERT_FALSE(rows.empty());
  for (const auto& row : rows) {
    EXPECT_EQ(tokenizer.encode(row["text"].get<std::string>()),
              row["ids"].get<std::vector<int32_t>>())
        << "text: " << row["text"].dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, ReferenceTokenizer,
                         ::testing::Values("gpt2", "llama3_1", "qwen3", "llama2", "tiny"));
INSTANTIATE_TEST_SUITE_P(Tokenizers, ChatTokenizer, ::testing::Values("llama3_1", "qwen3", "tiny"));

}  // namespace
}  // namespace flow2
