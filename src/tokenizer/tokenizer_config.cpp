#include "flow2/tokenizer_config.h"

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::string token_text(const json& config, const char* key, const std::string& source) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  check(it->is_object() && it->contains("content") && (*it)["content"].is_string(),
        "{}: '{}' must be a string or an object with 'content'", source, key);
  return (*it)["content"].get<std::string>();
}

}  // namespace

TokenizerConfig load_tokenizer_config(const std::filesystem::path& directory) {
  TokenizerConfig config;
  auto path = directory / "tokenizer_config.json";
  if (!std::filesystem::exists(path)) return config;
  const std::string source = path.string();
  json document = read_json_file(path);
  check(document.is_object(), "{}: expected a JSON object", source);
  config.bos_token = token_text(document, "bos_token", source);
  config.eos_token = token_text(document, "eos_token", source);
  auto chat = document.find("chat_template");
  if (chat == document.end() || chat->is_null()) return config;
  if (chat->is_string()) {
    config.chat_template = chat->get<std::string>();
    return config;
  }
  check(chat->is_array(), "{}: 'chat_template' must be a string or a list", source);
  for (const auto& entry : *chat) {
    check(entry.is_object() && entry.contains("name") && entry.contains("template") &&
              entry["template"].is_string(),
          "{}: each chat_template entry needs 'name' and 'template'", source);
    if (entry["name"] == "default") config.chat_template = entry["template"].get<std::string>();
  }
  return config;
}

std::filesystem::path tokenizer_json_path(const std::filesystem::path& model_or_file) {
  check(std::filesystem::exists(model_or_file), "{}: no such file or directory",
        model_or_file.string());
  if (!std::filesystem::is_directory(model_or_file)) return model_or_file;
  auto path = model_or_file / "tokenizer.json";
  check(std::filesystem::exists(path), "{}: no tokenizer.json in this directory",
        model_or_file.string());
  return path;
}

}  // namespace flow2
