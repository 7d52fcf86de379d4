// Option files for the CLI (flow2 finetune --config): a JSON object or a small YAML subset,
// read into flag names and their values so that the command line can override them.
//
// The YAML subset: `key: value` lines with scalars (plain, 'single' or "double" quoted),
// flow lists `key: [a, b]`, block lists (`key:` followed by `- item` lines), `#` comments and
// blank lines. Anchors, multi-line strings and nested mappings are rejected with the line.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace flow2 {

struct ConfigEntry {
  std::string key;                  // as written, e.g. "learning_rate" or "learning-rate"
  std::vector<std::string> values;  // one for a scalar; booleans are "true" / "false"
  bool is_list = false;
  int line = 0;  // 1-based in YAML; 0 for JSON
};

// By extension: .json is JSON, .yaml / .yml YAML. `source` names the file in errors.
std::vector<ConfigEntry> read_config_file(const std::filesystem::path& path);
std::vector<ConfigEntry> parse_yaml_config(std::string_view text, const std::string& source);
std::vector<ConfigEntry> parse_json_config(std::string_view text, const std::string& source);

}  // namespace flow2
