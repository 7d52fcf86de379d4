// Every tokenizer.json component against the reference `tokenizers` library: the cases under
// tests/data/tokenizers/components (made by tests/generators/gen_tokenizer_components.py) each
// wire one normalizer, pre-tokenizer, model option, added-token option, post-processor or
// decoder, with the reference's ids, tokens and decodings of 63 strings.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "flow2/tokenizer.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::vector<std::string> component_cases() {
  std::vector<std::string> names;
  for (const auto& entry :
       std::filesystem::directory_iterator(testing::data_path("tokenizers/components"))) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class TokenizerComponent : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerComponent, MatchesReference) {
  auto directory = testing::data_path("tokenizers/components/" + GetParam());
  Tokenizer tokenizer = Tokenizer::from_file(directory / "tokenizer.json");
  std::ifstream stream(directory / "expected.jsonl");
  int rows = 0;
  for (std::string line; std::getline(stream, line); ++rows) {
    json row = json::parse(line);
    const std::string text = row["text"].get<std::string>();
    const std::string where = "text: " + row["text"].dump();
    auto ids = row["ids"].get<std::vector<int32_t>>();
    auto with_special = row["ids_with_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer.encode(text), ids) << where;
    EXPECT_EQ(tokenizer.encode(text, true), with_special) << where;
    EXPECT_EQ(tokenizer.encode_with_tokens(text).tokens,
              row["tokens"].get<std::vector<std::string>>())
        << where;
    EXPECT_EQ(tokenizer.encode_with_tokens(text, true).ids, with_special) << where;
    EXPECT_EQ(tokenizer.decode(with_special), row["decoded"].get<std::string>()) << where;
    EXPECT_EQ(tokenizer.decode(with_special, true), row["decoded_skip_special"].get<std::string>())
        << where;
    if (HasFailure()) break;  // the first differing row says enough
  }
  EXPECT_EQ(rows, 63);
}

INSTANTIATE_TEST_SUITE_P(Components, TokenizerComponent, ::testing::ValuesIn(component_cases()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flow2
