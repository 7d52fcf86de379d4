// The text side of the command line: flow2 tokenize against the reference encodings, and text
// prompts in generate / perplexity giving the same results as the ids they encode to.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "flow2/tokenizer.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::string quoted(const std::string& text) {
  // Single-quoted for the shell; embedded single quotes closed, escaped and reopened.
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string join(const std::vector<int32_t>& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(ids[i]);
  }
  return text;
}

TEST(CliTokenize, InputJsonlMatchesReference) {
  auto directory = testing::data_path("tokenizers/qwen3");
  auto result = testing::run_cli("tokenize --model " + directory.string() + " --input-jsonl " +
                                 testing::data_path("tokenizers/corpus.jsonl").string());
  ASSERT_EQ(result.status, 0) << result.output;
  std::ifstream expected(directory / "expected.jsonl");
  std::istringstream printed(result.stdout_text);
  std::string expected_line, printed_line;
  int rows = 0;
  while (std::getline(expected, expected_line)) {
    ASSERT_TRUE(std::getline(printed, printed_line)) << "missing output row " << rows;
    json want = json::parse(expected_line), got = json::parse(printed_line);
    EXPECT_EQ(got["ids"], want["ids"]) << want["text"];
    EXPECT_EQ(got["tokens"], want["tokens"]) << want["text"];
    ++rows;
  }
  EXPECT_EQ(rows, 51);
}

TEST(CliTokenize, TextSpecialAndDecode) {
  auto directory = testing::data_path("tokenizers/llama3_1").string();
  std::ifstream stream(testing::data_path("tokenizers/llama3_1/expected.jsonl"));
  std::string line;
  for (int i = 0; i < 15; ++i) std::getline(stream, line);  // a row with contractions
  json row = json::parse(line);
  auto result = testing::run_cli("tokenize --model " + directory + " --json --special --text " +
                                 quoted(row["text"].get<std::string>()));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(json::parse(result.stdout_text)["ids"], row["ids_with_special"]);
  result = testing::run_cli("tokenize --model " + directory + " --json --decode " +
                            join(row["ids"].get<std::vector<int32_t>>()));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(json::parse(result.stdout_text)["text"], row["decoded"]);
}

TEST(CliTokenize, BadInputLineNamesTheLine) {
  testing::TempDir dir;
  testing::write_file(dir / "in.jsonl", "\"fine\"\n42\n");
  auto result =
      testing::run_cli("tokenize --model " + testing::data_path("tokenizers/gpt2").string() +
                       " --input-jsonl " + (dir / "in.jsonl").string());
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("in.jsonl:2: expected a JSON string"), std::string::npos)
      << result.output;
}

TEST(CliText, TextPromptsEqualTheirIds) {
  auto model = testing::model_path("tiny-llama");
  Tokenizer tokenizer = Tokenizer::from_file(model / "tokenizer.json");
  const std::string text = "The best way to predict the future";
  std::string ids = join(tokenizer.encode(text, true));

  auto from_text = testing::run_cli("generate --model " + model.string() + " --prompt " +
                                    quoted(text) + " -n 12 --ignore-eos --json");
  auto from_ids = testing::run_cli("generate --model " + model.string() + " --prompt-ids " + ids +
                                   " -n 12 --ignore-eos --json");
  ASSERT_EQ(from_text.status, 0) << from_text.output;
  ASSERT_EQ(from_ids.status, 0) << from_ids.output;
  json a = json::parse(from_text.stdout_text), b = json::parse(from_ids.stdout_text);
  EXPECT_EQ(a["ids"], b["ids"]);
  EXPECT_EQ(a["text"], tokenizer.decode(a["ids"].get<std::vector<int32_t>>(), true));

  testing::TempDir dir;
  testing::write_file(dir / "text.txt", text);
  auto ppl_file = testing::run_cli("perplexity --model " + model.string() + " --file " +
                                   (dir / "text.txt").string() + " --json");
  auto ppl_ids =
      testing::run_cli("perplexity --model " + model.string() + " --ids " + ids + " --json");
  ASSERT_EQ(ppl_file.status, 0) << ppl_file.output;
  EXPECT_EQ(json::parse(ppl_file.stdout_text), json::parse(ppl_ids.stdout_text));
}

}  // namespace
}  // namespace flow2
