#include "flow2/config_file.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "flow2/error.h"

namespace flow2 {
namespace {

std::string_view trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

// The text before a `#` that starts a comment (at the start or after a space, outside quotes).
std::string_view strip_comment(std::string_view line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

struct Where {
  const std::string& source;
  int line;
};

std::string scalar(std::string_view text, const Where& where) {
  text = trim(text);
  if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') &&
      text.back() == text.front()) {
    std::string_view inner = text.substr(1, text.size() - 2);
    if (text.front() == '\'') {  // '' is a quote
      std::string out;
      for (size_t i = 0; i < inner.size(); ++i) {
        out += inner[i];
        if (inner[i] == '\'' && i + 1 < inner.size() && inner[i + 1] == '\'') ++i;
      }
      return out;
    }
    try {  // YAML double quotes escape as JSON strings do, for what a flag needs
      return nlohmann::json::parse(text).get<std::string>();
    } catch (const nlohmann::json::exception&) {
      fail("{}:{}: bad quoted string {}", where.source, where.line, text);
    }
  }
  check(text.empty() || (text.front() != '&' && text.front() != '*' && text.front() != '|' &&
                         text.front() != '>' && text.front() != '{' && text.front() != '['),
        "{}:{}: unsupported YAML ({}): use key: value scalars and lists", where.source, where.line,
        text);
  if (text == "True" || text == "TRUE" || text == "yes" || text == "on") return "true";
  if (text == "False" || text == "FALSE" || text == "no" || text == "off") return "false";
  return std::string(text);
}

std::vector<std::string> flow_list(std::string_view text, const Where& where) {
  check(text.back() == ']', "{}:{}: unterminated list", where.source, where.line);
  std::string_view inner = trim(text.substr(1, text.size() - 2));
  std::vector<std::string> values;
  if (inner.empty()) return values;
  char quote = 0;
  size_t start = 0;
  for (size_t i = 0; i <= inner.size(); ++i) {
    if (i < inner.size() && quote) {
      if (inner[i] == quote) quote = 0;
    } else if (i < inner.size() && (inner[i] == '"' || inner[i] == '\'')) {
      quote = inner[i];
    } else if (i == inner.size() || inner[i] == ',') {
      values.push_back(scalar(inner.substr(start, i - start), where));
      start = i + 1;
    }
  }
  return values;
}

}  // namespace

std::vector<ConfigEntry> parse_yaml_config(std::string_view text, const std::string& source) {
  std::vector<ConfigEntry> entries;
  std::istringstream in{std::string(text)};
  std::string raw;
  int number = 0;
  bool open_list = false;  // the last key had no value: `- item` lines may follow
  while (std::getline(in, raw)) {
    ++number;
    Where where{source, number};
    std::string_view line = strip_comment(raw);
    std::string_view content = trim(line);
    if (content.empty() || content == "---") continue;
    if (content.front() == '-' && (content.size() == 1 || content[1] == ' ')) {
      check(open_list, "{}:{}: a list item without a key", source, number);
      entries.back().is_list = true;
      entries.back().values.push_back(scalar(content.substr(1), where));
      continue;
    }
    check(line.front() != ' ' && line.front() != '\t',
          "{}:{}: nested mappings are not supported (write key: value at the top level)", source,
          number);
    size_t colon = content.find(':');
    check(colon != std::string_view::npos && colon > 0, "{}:{}: expected key: value", source,
          number);
    ConfigEntry entry;
    entry.key = std::string(trim(content.substr(0, colon)));
    entry.line = number;
    std::string_view value = trim(content.substr(colon + 1));
    for (const auto& seen : entries) {
      check(seen.key != entry.key, "{}:{}: '{}' is set twice", source, number, entry.key);
    }
    open_list = value.empty();
    if (value.empty()) {
      entry.is_list = true;  // an empty list unless items follow
    } else if (value.front() == '[') {
      entry.is_list = true;
      entry.values = flow_list(value, where);
    } else {
      entry.values.push_back(scalar(value, where));
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::vector<ConfigEntry> parse_json_config(std::string_view text, const std::string& source) {
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    fail("{}: not valid JSON: {}", source, error.what());
  }
  check(root.is_object(), "{}: expected a JSON object of option names", source);
  auto as_text = [&](const std::string& key, const nlohmann::ordered_json& value) {
    if (value.is_string()) return value.get<std::string>();
    check(value.is_primitive() && !value.is_null(), "{}: '{}' must be a string, number or boolean",
          source, key);
    return value.dump();
  };
  std::vector<ConfigEntry> entries;
  for (const auto& [key, value] : root.items()) {
    ConfigEntry entry;
    entry.key = key;
    if (value.is_array()) {
      entry.is_list = true;
      for (const auto& item : value) entry.values.push_back(as_text(key, item));
    } else {
      entry.values.push_back(as_text(key, value));
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::vector<ConfigEntry> read_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read config file {}", path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string extension = path.extension().string();
  if (extension == ".json") return parse_json_config(buffer.str(), path.string());
  check(extension == ".yaml" || extension == ".yml", "{}: config files are .json, .yaml or .yml",
        path.string());
  return parse_yaml_config(buffer.str(), path.string());
}

}  // namespace flow2
