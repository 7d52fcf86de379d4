#include "flow2/gguf_vocabulary.h"

#include <nlohmann/json.hpp>

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

}  // namespace

Tokenizer tokenizer_from_gguf(const GgufFile& file) {
  const std::string& source = file.source();
  auto require = [&](const char* key) {
    const GgufValue* value = file.find(key);
    check(value != nullptr, "{}: missing GGUF key '{}'", source, key);
    return value;
  };
  const std::string& model = require("tokenizer.ggml.model")->as_string("tokenizer.ggml.model");
  check(model == "gpt2", "{}: tokenizer.ggml.model '{}' is not supported yet (gpt2 is)", source,
        model);
  const GgufArray& tokens = require("tokenizer.ggml.tokens")->as_array("tokenizer.ggml.tokens");
  const GgufArray* types = nullptr;
  if (const GgufValue* value = file.find("tokenizer.ggml.token_type")) {
    types = &value->as_array("tokenizer.ggml.token_type");
  }
  std::vector<std::pair<std::string_view, int64_t>> vocab;
  vocab.reserve(tokens.items.size());
  json added = json::array();
  for (size_t id = 0; id < tokens.items.size(); ++id) {
    const std::string* token = string_at(tokens, id);
    check(token != nullptr, "{}: tokenizer.ggml.tokens[{}] is not a string", source, id);
    vocab.emplace_back(*token, static_cast<int64_t>(id));
    // Token types: 3 control (special), 4 user-defined: both are matched before the model runs.
    int64_t type = types && id < types->items.size() ? types->items[id].as_int("token_type") : 1;
    if (type == 3 || type == 4) {
      added.push_back(
          {{"id", id}, {"content", *token}, {"special", type == 3}, {"normalized", false}});
    }
  }
  std::vector<std::pair<std::string_view, std::string_view>> merges;
  if (const GgufValue* value = file.find("tokenizer.ggml.merges")) {
    const GgufArray& list = value->as_array("tokenizer.ggml.merges");
    merges.reserve(list.items.size());
    for (size_t i = 0; i < list.items.size(); ++i) {
      const std::string* merge = string_at(list, i);
      check(merge != nullptr, "{}: tokenizer.ggml.merges[{}] is not a string", source, i);
      size_t space = merge->find(' ');
      check(space != std::string::npos, "{}: merge {} '{}' is not two tokens", source, i, *merge);
      std::string_view text(*merge);
      merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    }
  }
  std::string pre = "default";
  if (const GgufValue* value = file.find("tokenizer.ggml.pre")) pre = value->as_string("pre");
  json sections = {{"added_tokens", added},
                   {"pre_tokenizer", pre_tokenizer_for(pre, source)},
                   {"decoder", {{"type", "ByteLevel"}}}};
  const GgufValue* add_bos = file.find("tokenizer.ggml.add_bos_token");
  const GgufValue* bos = file.find("tokenizer.ggml.bos_token_id");
  if (add_bos && add_bos->as_bool("add_bos_token") && bos) {
    const std::string* bos_text = string_at(tokens, bos->as_uint("bos_token_id"));
    check(bos_text != nullptr, "{}: bos token id out of range", source);
    sections["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", *bos_text}}}}, {{"Sequence", {{"id", "A"}}}}}},
        {"special_tokens", {{*bos_text, {{"ids", {bos->as_uint("bos_token_id")}}}}}}};
  }
  json options = {{"type", "BPE"}};
  return Tokenizer::from_parts(sections, options, std::move(vocab), merges, source);
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
