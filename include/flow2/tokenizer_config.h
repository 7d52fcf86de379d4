// What a model directory says about its tokenizer beyond tokenizer.json: the chat template and
// the special tokens that templates refer to (tokenizer_config.json).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace flow2 {

struct TokenizerConfig {
  std::optional<std::string> chat_template;  // the default template, if any
  std::string bos_token;
  std::string eos_token;
};

// Reads `directory`/tokenizer_config.json; a missing file gives an empty config. Tokens may be
// strings or {"content": ...} objects; chat_template a string or a list of named templates
// (the one named "default" is used).
TokenizerConfig load_tokenizer_config(const std::filesystem::path& directory);

// The tokenizer.json for a model directory or a path to the file itself.
std::filesystem::path tokenizer_json_path(const std::filesystem::path& model_or_file);

}  // namespace flow2
