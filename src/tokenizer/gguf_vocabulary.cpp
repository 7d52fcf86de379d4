#include "flow2/gguf_vocabulary.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "flow2/error.h"

namespace flow2 {
namespace {

using nlohmann::json;

// The split rules of byte-level vocabularies, by tokenizer.ggml.pre (as in the Hugging Face
// tokenizer.json files these GGUF files were converted from).
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", use_regex}};
}

json split_then_bytes(const char* pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}},
            byte_level(false)}}};
}

json pre_tokenizer_for(const std::string& pre, const std::string& source) {
  if (pre == "default" || pre == "gpt-2" || pre == "gpt2") return byte_level(true);
  if (pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3")
    return split_then_bytes(kLlama3Pattern);
  if (pre == "qwen2") return split_then_bytes(kQwen2Pattern);
  if (pre == "smollm") {
    return {
        {"type", "Sequence"},
        {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
  }
  fail("{}: tokenizer.ggml.pre '{}' is not supported (default, gpt2, llama-bpe, qwen2, smollm)",
       source, pre);
}

const std::string* string_at(const GgufArray& array, size_t index) {
  return index < array.items.size() ? std::get_if<std::string>(&array.items[index].value) : nullptr;
}

bool is_integer(GgufType type) {
  return type == GgufType::U8 || type == GgufType::I8 || type == GgufType::U16 ||
         type == GgufType::I16 || type == GgufType::U32 || type == GgufType::I32 ||
         type == GgufType::U64 || type == GgufType::I64;
}

// llama.cpp's token types.
enum TokenType : int64_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class VocabularyReader {
 public:
  explicit VocabularyReader(const GgufFile& file) : file_(file) {}
  const std::string& source() const { return file_.source(); }
  const GgufValue& require(const char* key) const {
    const GgufValue* value = file_.find(key);
    check(value != nullptr, "{}: missing GGUF key '{}'", source(), key);
    return *value;
  }
  // The array `key` (required or optional), checked to hold `count` elements accepted by `ok`.
  const GgufArray* array(const char* key, bool required, size_t count, bool (*ok)(GgufType),
                         const char* what) const {
    const GgufValue* value = required ? &require(key) : file_.find(key);
    if (!value) return nullptr;
    check(value->type == GgufType::ARRAY, "{}: GGUF key '{}' must be an array of {}", source(), key,
          what);
    const GgufArray& items = value->as_array(key);
    check(ok(items.element_type), "{}: GGUF key '{}' must be an array of {}", source(), key, what);
    check(items.items.size() == count, "{}: GGUF key '{}' has {} entries for {} tokens", source(),
          key, items.items.size(), count);
    return &items;
  }
  std::optional<int64_t> token_id(const char* key, size_t vocab_size) const {
    const GgufValue* value = file_.find(key);
    if (!value) return std::nullopt;
    uint64_t id = value->as_uint(key);
    check(id < vocab_size, "{}: GGUF key '{}' is {}, outside the {} tokens", source(), key, id,
          vocab_size);
    return static_cast<int64_t>(id);
  }
  bool flag(const char* key, bool fallback) const {
    const GgufValue* value = file_.find(key);
    return value ? value->as_bool(key) : fallback;
  }

 private:
  const GgufFile& file_;
};

// A post-processor that puts the bos token in front and the eos token after, as the file asks.
json template_processing(const std::vector<std::string>& vocab_text, std::optional<int64_t> bos,
                         std::optional<int64_t> eos) {
  json single = json::array();
  json specials = json::object();
  auto special = [&](int64_t id) {
    const std::string& text = vocab_text[static_cast<size_t>(id)];
    specials[text] = {{"id", text}, {"ids", {id}}, {"tokens", {text}}};
    return json{{"SpecialToken", {{"id", text}}}};
  };
  if (bos) single.push_back(special(*bos));
  single.push_back({{"Sequence", {{"id", "A"}}}});
  if (eos) single.push_back(special(*eos));
  return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}};
}

// SentencePiece BPE (tokenizer.ggml.model "llama") as a BPE model: llama.cpp merges the
// adjacent pair whose concatenation is the vocabulary token with the highest score (leftmost
// on ties). So every split of a token into two vocabulary tokens is a merge, ranked by the
// token's score; equal scores share a rank.
void spm_merges(const std::vector<std::string>& text, const std::vector<float>& scores,
                const std::vector<int64_t>& types,
                std::vector<std::pair<std::string_view, std::string_view>>& merges,
                std::vector<int32_t>& ranks) {
  std::vector<float> distinct(scores);
  std::sort(distinct.begin(), distinct.end(), std::greater<>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  std::unordered_set<std::string_view> known(text.begin(), text.end());
  for (size_t id = 0; id < text.size(); ++id) {
    if (types[id] == kByte) continue;  // "<0xNN>" stands for a byte, not for its spelling
    const std::string_view token = text[id];
    const auto rank = static_cast<int32_t>(
        std::lower_bound(distinct.begin(), distinct.end(), scores[id], std::greater<>()) -
        distinct.begin());
    // Splits at character boundaries: the symbols llama.cpp starts from are characters.
    for (size_t split = 1; split < token.size(); ++split) {
      if ((static_cast<unsigned char>(token[split]) & 0xC0) == 0x80) continue;
      std::string_view left = token.substr(0, split), right = token.substr(split);
      if (known.contains(left) && known.contains(right)) {
        merges.emplace_back(left, right);
        ranks.push_back(rank);
      }
    }
  }
}

}  // namespace

Tokenizer tokenizer_from_gguf(const GgufFile& file) {
  VocabularyReader reader(file);
  const std::string& source = file.source();
  const std::string& model =
      reader.require("tokenizer.ggml.model").as_string("tokenizer.ggml.model");
  check(model == "gpt2" || model == "llama",
        "{}: tokenizer.ggml.model '{}' is not supported (gpt2, llama)", source, model);
  const bool spm = model == "llama";
  const GgufValue& tokens_value = reader.require("tokenizer.ggml.tokens");
  check(tokens_value.type == GgufType::ARRAY &&
            tokens_value.as_array("tokenizer.ggml.tokens").element_type == GgufType::STRING,
        "{}: GGUF key 'tokenizer.ggml.tokens' must be an array of strings", source);
  const GgufArray& tokens = tokens_value.as_array("tokenizer.ggml.tokens");
  const size_t count = tokens.items.size();
  check(count > 0, "{}: GGUF key 'tokenizer.ggml.tokens' is empty", source);

  std::vector<std::string> text(count);
  for (size_t id = 0; id < count; ++id) {
    const std::string* token = string_at(tokens, id);
    check(token != nullptr, "{}: tokenizer.ggml.tokens[{}] is not a string", source, id);
    text[id] = *token;
  }
  std::vector<int64_t> types(count, kNormal);
  if (const GgufArray* array =
          reader.array("tokenizer.ggml.token_type", false, count, is_integer, "integers")) {
    for (size_t id = 0; id < count; ++id) {
      types[id] = array->items[id].as_int("tokenizer.ggml.token_type");
      check(types[id] >= kNormal && types[id] <= kByte,
            "{}: tokenizer.ggml.token_type[{}] is {}, not a token type (1 to 6)", source, id,
            types[id]);
    }
  }
  std::vector<float> scores;
  if (spm) {
    const GgufArray* array = reader.array(
        "tokenizer.ggml.scores", true, count, [](GgufType type) { return type == GgufType::F32; },
        "float32");
    scores.reserve(count);
    for (const auto& item : array->items) {
      scores.push_back(static_cast<float>(item.as_float("tokenizer.ggml.scores")));
    }
  }

  std::vector<std::pair<std::string_view, int64_t>> vocab;
  vocab.reserve(count);
  json added = json::array();
  for (size_t id = 0; id < count; ++id) {
    vocab.emplace_back(text[id], static_cast<int64_t>(id));
    // Control (and unknown) tokens are special; they and user-defined tokens are matched in the
    // text before the model runs, as llama.cpp does.
    const bool special = types[id] == kControl || (spm && types[id] == kUnknown);
    if (special || types[id] == kUserDefined) {
      added.push_back(
          {{"id", id}, {"content", text[id]}, {"special", special}, {"normalized", false}});
    }
  }

  std::vector<std::pair<std::string_view, std::string_view>> merges;
  std::vector<int32_t> ranks;
  json sections = {{"added_tokens", added}};
  json options = {{"type", "BPE"}};
  if (spm) {
    spm_merges(text, scores, types, merges, ranks);
    // Spaces become U+2581; with add_space_prefix one goes in front of the text (and of the
    // text after each special token) and decoding strips it again.
    const bool space_prefix = reader.flag("tokenizer.ggml.add_space_prefix", true);
    json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}};
    json normalizers = json::array();
    if (space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", "\u2581"}});
    normalizers.push_back(replace);
    sections["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
    json decoders = {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                     {{"type", "ByteFallback"}},
                     {{"type", "Fuse"}}};
    if (space_prefix) {
      decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1u}, {"stop", 0u}});
    }
    sections["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
    options["byte_fallback"] = true;
    options["fuse_unk"] = true;
    if (auto unk = reader.token_id("tokenizer.ggml.unknown_token_id", count)) {
      options["unk_token"] = text[static_cast<size_t>(*unk)];
    }
  } else {
    if (const GgufValue* value = file.find("tokenizer.ggml.merges")) {
      const GgufArray& list = value->as_array("tokenizer.ggml.merges");
      check(list.element_type == GgufType::STRING,
            "{}: GGUF key 'tokenizer.ggml.merges' must be an array of strings", source);
      merges.reserve(list.items.size());
      for (size_t i = 0; i < list.items.size(); ++i) {
        const std::string* merge = string_at(list, i);
        check(merge != nullptr, "{}: tokenizer.ggml.merges[{}] is not a string", source, i);
        size_t space = merge->find(' ');
        check(space != std::string::npos, "{}: merge {} '{}' is not two tokens", source, i, *merge);
        std::string_view pair(*merge);
        merges.emplace_back(pair.substr(0, space), pair.substr(space + 1));
      }
    }
    std::string pre = "default";
    if (const GgufValue* value = file.find("tokenizer.ggml.pre")) {
      pre = value->as_string("tokenizer.ggml.pre");
    }
    sections["pre_tokenizer"] = pre_tokenizer_for(pre, source);
    sections["decoder"] = {{"type", "ByteLevel"}};
  }

  // llama.cpp adds a bos token by default for SentencePiece vocabularies only.
  std::optional<int64_t> bos = reader.token_id("tokenizer.ggml.bos_token_id", count);
  std::optional<int64_t> eos = reader.token_id("tokenizer.ggml.eos_token_id", count);
  const bool add_bos = bos && reader.flag("tokenizer.ggml.add_bos_token", spm);
  const bool add_eos = eos && reader.flag("tokenizer.ggml.add_eos_token", false);
  if (add_bos || add_eos) {
    sections["post_processor"] =
        template_processing(text, add_bos ? bos : std::nullopt, add_eos ? eos : std::nullopt);
  }
  return Tokenizer::from_parts(sections, options, std::move(vocab), merges, source, ranks);
}

TokenizerConfig tokenizer_config_from_gguf(const GgufFile& file) {
  TokenizerConfig config;
  if (const GgufValue* value = file.find("tokenizer.chat_template")) {
    config.chat_template = value->as_string("tokenizer.chat_template");
  }
  const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
  auto token_text = [&](const char* key) -> std::string {
    const GgufValue* id = file.find(key);
    if (!id || !tokens) return "";
    const std::string* text = string_at(tokens->as_array("tokens"), id->as_uint(key));
    return text ? *text : "";
  };
  config.bos_token = token_text("tokenizer.ggml.bos_token_id");
  config.eos_token = token_text("tokenizer.ggml.eos_token_id");
  return config;
}

}  // namespace flow2
