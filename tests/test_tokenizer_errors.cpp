// Broken tokenizer.json files give errors that name the file and the fault; the streaming
// decoder never emits broken UTF-8 and adds up to the full decode.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "flow2/error.h"
#include "flow2/tokenizer.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::string load_error(const std::string& text) {
  try {
    Tokenizer::from_json_text(text, "broken/tokenizer.json");
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("broken/tokenizer.json"), std::string::npos) << message;
    return message;
  }
  return "(no error)";
}

json tiny_tokenizer() {
  return json::parse(testing::read_file(testing::model_path("tiny-llama/tokenizer.json")));
}

void expect_load_error(const json& document, const std::string& fragment) {
  std::string message = load_error(document.dump());
  EXPECT_NE(message.find(fragment), std::string::npos)
      << "expected '" << fragment << "' in: " << message;
}

TEST(TokenizerErrors, MalformedAndTruncatedJson) {
  std::string text = tiny_tokenizer().dump();
  EXPECT_NE(load_error(text.substr(0, text.size() / 2)).find("malformed JSON"), std::string::npos);
  EXPECT_NE(load_error("").find("malformed JSON"), std::string::npos);
  EXPECT_NE(load_error("[1, 2]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(load_error("{}").find("no 'model'"), std::string::npos);
}

TEST(TokenizerErrors, UnknownComponentTypes) {
  json document = tiny_tokenizer();
  document["normalizer"] = {{"type", "Frobnicate"}};
  expect_load_error(document, "unsupported normalizer type 'Frobnicate'");
  document = tiny_tokenizer();
  document["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "Nope"}}}}};
  expect_load_error(document, "unsupported pre_tokenizer type 'Nope'");
  document = tiny_tokenizer();
  document["decoder"] = {{"type", "CTC"}};
  expect_load_error(document, "unsupported decoder type 'CTC'");
  document = tiny_tokenizer();
  document["post_processor"] = {{"type", "Mystery"}};
  expect_load_error(document, "unsupported post_processor type 'Mystery'");
  document = tiny_tokenizer();
  document["model"]["type"] = "Unigram";
  expect_load_error(document, "unsupported model type 'Unigram'");
}

TEST(TokenizerErrors, BadModelContents) {
  json document = tiny_tokenizer();
  document["model"]["merges"][0] = "no-space-here";
  expect_load_error(document, "merge 0 'no-space-here' is not two tokens");
  document = tiny_tokenizer();
  document["model"]["merges"][3] = "zzz qqq";
  expect_load_error(document, "merge 3 ('zzz' + 'qqq') uses tokens not in the vocab");
  document = tiny_tokenizer();
  document["model"]["vocab"]["Ġthe"] = "seven";
  expect_load_error(document, "vocab entry 'Ġthe' has an invalid id");
  document = tiny_tokenizer();
  document["model"]["unk_token"] = "<nope>";
  expect_load_error(document, "unk_token '<nope>' is not in the vocab");
  document = tiny_tokenizer();
  document["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_load_error(document, "invalid regex '(unclosed'");
  document = tiny_tokenizer();
  document["added_tokens"] = {{{"id", 5}}};
  expect_load_error(document, "every added token needs an integer 'id' and a string 'content'");
}

TEST(TokenizerErrors, MissingFile) {
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), Error);
}

// Decoding streamed ids one at a time gives exactly the text of one full decode, and each
// emitted piece is well-formed UTF-8.
TEST(StreamingDecoder, PiecesAreValidAndAddUp) {
  for (const char* name : {"llama3_1", "llama2", "qwen3"}) {
    Tokenizer tokenizer = Tokenizer::from_file(
        testing::data_path(std::string("tokenizers/") + name + "/tokenizer.json"));
    const std::string text =
        "Emoji 👩‍👩‍👧 and flags 🇫🇷🇯🇵, accents café naïve, CJK "
        "東京タワー, "
        "Devanagari "
        "नमस्ते. "
        "<|eot_id|> done";
    auto ids = tokenizer.encode(text);
    StreamingDecoder stream(tokenizer, false);
    std::string streamed;
    for (int32_t id : ids) {
      std::string piece = stream.push(id);
      EXPECT_TRUE(utf8::is_valid(piece)) << name;
      streamed += piece;
    }
    streamed += stream.finish();
    EXPECT_EQ(streamed, tokenizer.decode(ids)) << name;
  }
}

TEST(StreamingDecoder, HoldsBackIncompleteCharacters) {
  Tokenizer tokenizer = Tokenizer::from_file(testing::data_path("tokenizers/gpt2/tokenizer.json"));
  // In GPT-2's byte-level vocabulary "é" is one token, but its bytes can also be separate ids.
  auto byte_id = [&](unsigned char byte) {
    return *tokenizer.token_to_id(std::string(utf8::byte_to_unicode()[byte]));
  };
  StreamingDecoder stream(tokenizer);
  EXPECT_EQ(stream.push(byte_id(0xc3)), "");  // first byte of "é": nothing yet
  EXPECT_EQ(stream.push(byte_id(0xa9)), "é");
  EXPECT_EQ(stream.push(byte_id(0xe2)), "");  // first of three bytes of "€"
  EXPECT_EQ(stream.push(byte_id(0x82)), "");
  EXPECT_EQ(stream.push(byte_id(0xac)), "€");
  EXPECT_EQ(stream.push(byte_id(0xe2)), "");
  EXPECT_EQ(stream.finish(), "\xef\xbf\xbd");  // a dangling byte ends as U+FFFD
}

TEST(Utf8, MakeValidReplacesMaximalSubparts) {
  // Unicode's recommended practice (Table 3-8): one U+FFFD per maximal ill-formed subpart.
  EXPECT_EQ(utf8::make_valid("a\xc3"), "a\xef\xbf\xbd");
  EXPECT_EQ(utf8::make_valid("\xe2\x82"), "\xef\xbf\xbd");
  EXPECT_EQ(utf8::make_valid("\xe2\x82\x41"),
            "\xef\xbf\xbd"
            "A");
  EXPECT_EQ(utf8::make_valid("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(utf8::make_valid("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(utf8::make_valid("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
  EXPECT_EQ(utf8::incomplete_suffix("ab\xf0\x9f\x98"), 3u);
  EXPECT_EQ(utf8::incomplete_suffix("ab\xf0\x9f\x98\x80"), 0u);
}

}  // namespace
}  // namespace flow2
