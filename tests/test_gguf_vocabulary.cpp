// SentencePiece (tokenizer.ggml.model "llama") vocabularies from GGUF metadata. The llama2
// fixture's tokenizer.json (a Mistral-style SentencePiece BPE vocabulary) is written as GGUF the
// way llama.cpp's converter writes SentencePiece models: tokens in id order, a score per token,
// token types. Loaded back, it must encode every expected.jsonl row to the Hugging Face ids and
// agree with a literal, slow implementation of llama.cpp's SentencePiece algorithm.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "flow2/error.h"
#include "flow2/gguf.h"
#include "flow2/gguf_vocabulary.h"
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

// The vocabulary of tokenizers/llama2 as GGUF metadata.
struct SpmVocabulary {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;

  static SpmVocabulary from_tokenizer_json() {
    json document =
        json::parse(testing::read_file(testing::data_path("tokenizers/llama2/tokenizer.json")));
    const json& model = document["model"];
    SpmVocabulary vocabulary;
    const size_t count = model["vocab"].size();
    vocabulary.tokens.resize(count);
    vocabulary.types.assign(count, 1);
    for (const auto& [token, id] : model["vocab"].items()) {
      vocabulary.tokens.at(id.get<size_t>()) = token;
    }
    // A token's score is minus the rank of the first merge that makes it: the order in which
    // tokenizers' BPE applies the merges. Tokens no merge makes (single characters) come after.
    const size_t merges = model["merges"].size();
    std::unordered_map<std::string, size_t> first_rank;
    for (size_t rank = 0; rank < merges; ++rank) {
      std::string merge = model["merges"][rank].get<std::string>();
      std::string merged = merge.substr(0, merge.find(' ')) + merge.substr(merge.find(' ') + 1);
      first_rank.emplace(merged, rank);
    }
    vocabulary.scores.resize(count);
    for (size_t id = 0; id < count; ++id) {
      const std::string& token = vocabulary.tokens[id];
      auto it = first_rank.find(token);
      vocabulary.scores[id] =
          -static_cast<float>(it != first_rank.end() ? it->second : merges + id);
      if (token.size() == 6 && token.starts_with("<0x") && token.ends_with(">")) {
        vocabulary.types[id] = 6;
        vocabulary.scores[id] = 0.0f;
      }
    }
    for (const auto& added : document["added_tokens"]) {
      size_t id = added["id"].get<size_t>();
      vocabulary.types[id] = added["content"] == "<unk>" ? 2 : 3;
      vocabulary.scores[id] = 0.0f;
    }
    return vocabulary;
  }

  GgufMetadata metadata() const {
    std::vector<GgufValue> token_values, score_values, type_values;
    for (size_t id = 0; id < tokens.size(); ++id) {
      token_values.push_back(GgufValue::of_string(tokens[id]));
      score_values.push_back(GgufValue::of_float32(scores[id]));
      type_values.push_back(GgufValue{GgufType::I32, int64_t{types[id]}});
    }
    GgufMetadata metadata;
    metadata.emplace_back("general.architecture", GgufValue::of_string("llama"));
    metadata.emplace_back("tokenizer.ggml.model", GgufValue::of_string("llama"));
    metadata.emplace_back("tokenizer.ggml.tokens",
                          GgufValue::of_array(GgufType::STRING, std::move(token_values)));
    metadata.emplace_back("tokenizer.ggml.scores",
                          GgufValue::of_array(GgufType::F32, std::move(score_values)));
    metadata.emplace_back("tokenizer.ggml.token_type",
                          GgufValue::of_array(GgufType::I32, std::move(type_values)));
    metadata.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::of_uint32(1));
    metadata.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::of_uint32(2));
    metadata.emplace_back("tokenizer.ggml.unknown_token_id", GgufValue::of_uint32(0));
    metadata.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::of_bool(true));
    metadata.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::of_bool(false));
    metadata.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::of_bool(true));
    return metadata;
  }
};

const SpmVocabulary& llama2_vocabulary() {
  static const SpmVocabulary vocabulary = SpmVocabulary::from_tokenizer_json();
  return vocabulary;
}

Tokenizer load(const testing::TempDir& dir, const GgufMetadata& metadata) {
  write_gguf(dir / "vocab.gguf", metadata, {});
  return tokenizer_from_gguf(GgufFile::open(dir / "vocab.gguf"));
}

// llama.cpp's SentencePiece tokenizer written out as plainly as possible: split off control
// tokens; in each piece of text put U+2581 for spaces (and one in front), start from single
// characters, merge the adjacent pair whose concatenation is the best-scoring token (leftmost
// on ties) until none is, and spell what is left over that is not a token as byte tokens.
std::vector<int32_t> literal_spm(const SpmVocabulary& vocabulary, const std::string& text,
                                 bool space_prefix = true) {
  std::map<std::string, int32_t> ids;
  for (size_t id = 0; id < vocabulary.tokens.size(); ++id) {
    ids.emplace(vocabulary.tokens[id], static_cast<int32_t>(id));
  }
  std::vector<int32_t> out;
  auto encode_piece = [&](std::string piece) {
    if (piece.empty()) return;
    if (space_prefix) piece = " " + piece;
    std::string escaped;
    for (char c : piece) escaped += c == ' ' ? std::string("\u2581") : std::string(1, c);
    std::vector<std::string> symbols;
    for (size_t i = 0; i < escaped.size();) {
      size_t length = 1;
      while (i + length < escaped.size() &&
             (static_cast<unsigned char>(escaped[i + length]) & 0xC0) == 0x80) {
        ++length;
      }
      symbols.push_back(escaped.substr(i, length));
      i += length;
    }
    for (;;) {
      int best = -1;
      float best_score = 0.0f;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = ids.find(symbols[i] + symbols[i + 1]);
        if (it == ids.end()) continue;
        float score = vocabulary.scores[static_cast<size_t>(it->second)];
        if (best < 0 || score > best_score) {
          best = static_cast<int>(i);
          best_score = score;
        }
      }
      if (best < 0) break;
      symbols[best] += symbols[best + 1];
      symbols.erase(symbols.begin() + best + 1);
    }
    for (const auto& symbol : symbols) {
      if (auto it = ids.find(symbol); it != ids.end()) {
        out.push_back(it->second);
        continue;
      }
      for (unsigned char byte : symbol) out.push_back(ids.at(fmt::format("<0x{:02X}>", byte)));
    }
  };
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    for (int32_t special : {0, 1, 2}) {
      const std::string& token = vocabulary.tokens[static_cast<size_t>(special)];
      if (text.compare(i, token.size(), token) == 0) {
        encode_piece(text.substr(start, i - start));
        out.push_back(special);
        i += token.size();
        start = i;
        matched = true;
        break;
      }
    }
    if (!matched) ++i;
  }
  encode_piece(text.substr(start));
  return out;
}

TEST(GgufSpmVocabulary, EncodesLikeHuggingFaceAndLlamaCpp) {
  testing::TempDir dir;
  const SpmVocabulary& vocabulary = llama2_vocabulary();
  Tokenizer tokenizer = load(dir, vocabulary.metadata());
  Tokenizer reference =
      Tokenizer::from_file(testing::data_path("tokenizers/llama2/tokenizer.json"));
  auto rows = read_jsonl(testing::data_path("tokenizers/llama2/expected.jsonl"));
  ASSERT_EQ(rows.size(), 51u);
  for (const auto& row : rows) {
    const std::string text = row["text"].get<std::string>();
    const auto expected = row["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer.encode(text), expected) << row["text"].dump();
    // The same ids as llama.cpp's algorithm taken literally: on this vocabulary, Hugging Face
    // and llama.cpp agree on every row.
    EXPECT_EQ(literal_spm(vocabulary, text), expected) << row["text"].dump();
    EXPECT_EQ(tokenizer.encode(text, true), row["ids_with_special"].get<std::vector<int32_t>>())
        << row["text"].dump();
    EXPECT_EQ(tokenizer.decode(expected), row["decoded"].get<std::string>()) << row["text"].dump();
    EXPECT_EQ(tokenizer.tokens(expected), row["tokens"].get<std::vector<std::string>>());
  }
  // Beyond the corpus: longer mixed text agrees with tokenizer.json.
  std::ifstream corpus(testing::data_path("tokenizers/corpus.jsonl"));
  for (std::string line; std::getline(corpus, line);) {
    std::string text = json::parse(line).get<std::string>();
    EXPECT_EQ(tokenizer.encode(text), reference.encode(text)) << line;
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), reference.decode(reference.encode(text)));
  }
  EXPECT_TRUE(tokenizer.is_special(1));
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{1, 22557, 2}, true), "Hello");
}

TEST(GgufSpmVocabulary, EqualScoresMergeLeftmostFirst) {
  testing::TempDir dir;
  SpmVocabulary vocabulary;
  vocabulary.tokens = {"<unk>", "<s>", "</s>", "\u2581", "a", "b", "ab", "ba", "\u2581a", "bab"};
  vocabulary.scores = {0, 0, 0, -10, -10, -10, -1, -1, -1, -2};
  vocabulary.types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1};
  Tokenizer tokenizer = load(dir, vocabulary.metadata());
  // "▁aba": "▁a", "ab" and "ba" all score -1; the leftmost pair merges first, then "ba".
  // (Ranking the merges by token id instead would merge "ab" first and give ▁, ab, a.)
  EXPECT_EQ(tokenizer.encode("aba"), (std::vector<int32_t>{8, 7}));
  for (const char* text : {"aba", "abab", "bab", "ba ab"}) {
    EXPECT_EQ(tokenizer.encode(text), literal_spm(vocabulary, text)) << text;
  }
  // Characters outside the vocabulary fall back to byte tokens, which this one lacks: <unk>.
  EXPECT_EQ(tokenizer.encode("c"), (std::vector<int32_t>{3, 0}));
}

TEST(GgufSpmVocabulary, WithoutSpacePrefix) {
  testing::TempDir dir;
  GgufMetadata metadata = llama2_vocabulary().metadata();
  for (auto& [key, value] : metadata) {
    if (key == "tokenizer.ggml.add_space_prefix") value = GgufValue::of_bool(false);
    if (key == "tokenizer.ggml.add_eos_token") value = GgufValue::of_bool(true);
  }
  Tokenizer tokenizer = load(dir, metadata);
  // No "▁" in front of the text, and the eos id after it.
  std::vector<int32_t> expected = {1};
  for (int32_t id : literal_spm(llama2_vocabulary(), "Hello world", false)) expected.push_back(id);
  expected.push_back(2);
  EXPECT_EQ(tokenizer.encode("Hello world", true), expected);
  EXPECT_FALSE(tokenizer.id_to_token(expected[1])->starts_with("\u2581"));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(" Hello world")), " Hello world");
}

std::string load_error(GgufMetadata metadata) {
  testing::TempDir dir;
  try {
    load(dir, metadata);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

GgufMetadata replaced(const std::string& key, std::optional<GgufValue> value) {
  GgufMetadata metadata = llama2_vocabulary().metadata();
  for (auto it = metadata.begin(); it != metadata.end(); ++it) {
    if (it->first != key) continue;
    if (value) {
      it->second = *value;
    } else {
      metadata.erase(it);
    }
    break;
  }
  return metadata;
}

TEST(GgufSpmVocabulary, ErrorsNameTheKey) {
  auto expect = [](const GgufMetadata& metadata, const std::string& fragment) {
    std::string message = load_error(metadata);
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_NE(message.find("vocab.gguf"), std::string::npos) << message;
  };
  expect(replaced("tokenizer.ggml.scores", std::nullopt),
         "missing GGUF key 'tokenizer.ggml.scores'");
  expect(replaced("tokenizer.ggml.scores", GgufValue::of_array(GgufType::I32, {})),
         "'tokenizer.ggml.scores' must be an array of float32");
  expect(replaced("tokenizer.ggml.scores", GgufValue::of_float32(1.0f)),
         "'tokenizer.ggml.scores' must be an array of float32");
  expect(replaced("tokenizer.ggml.scores",
                  GgufValue::of_array(GgufType::F32, {GgufValue::of_float32(0.0f)})),
         "'tokenizer.ggml.scores' has 1 entries for 32000 tokens");
  expect(replaced("tokenizer.ggml.token_type",
                  GgufValue::of_array(GgufType::STRING, {GgufValue::of_string("1")})),
         "'tokenizer.ggml.token_type' must be an array of integers");
  GgufMetadata bad_type = llama2_vocabulary().metadata();
  for (auto& [key, value] : bad_type) {
    if (key == "tokenizer.ggml.token_type") {
      std::get<GgufArray>(value.value).items[7] = GgufValue{GgufType::I32, int64_t{9}};
    }
  }
  expect(bad_type, "tokenizer.ggml.token_type[7] is 9");
  expect(replaced("tokenizer.ggml.tokens", std::nullopt),
         "missing GGUF key 'tokenizer.ggml.tokens'");
  expect(replaced("tokenizer.ggml.tokens",
                  GgufValue::of_array(GgufType::U32, {GgufValue::of_uint32(1)})),
         "'tokenizer.ggml.tokens' must be an array of strings");
  expect(replaced("tokenizer.ggml.bos_token_id", GgufValue::of_uint32(40000)),
         "'tokenizer.ggml.bos_token_id' is 40000");
  expect(replaced("tokenizer.ggml.model", GgufValue::of_string("bert")),
         "tokenizer.ggml.model 'bert' is not supported");
}

}  // namespace
}  // namespace flow2
