#include "train/jsonl_reader.h"

#include <fstream>

#include "flow2/error.h"

namespace flow2 {
namespace {

bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the tag helps nobody.
std::string without_exception_tag(const std::string& message) {
  if (message.starts_with("[json.exception.")) {
    auto end = message.find("] ");
    if (end != std::string::npos) return message.substr(end + 2);
  }
  return message;
}

std::string json_type(const nlohmann::json& value) {
  return value.type_name();
}

}  // namespace

JsonlFile read_jsonl(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  check(stream.good(), "{}: cannot open", path.string());
  JsonlFile file;
  file.path = path;
  file.empty = true;
  int64_t number = 0;
  for (std::string line; std::getline(stream, line);) {
    ++number;
    if (number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // UTF-8 BOM
    if (blank(line)) continue;
    file.empty = false;
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& error) {
      file.errors.push_back({number, "invalid JSON: " + without_exception_tag(error.what())});
      continue;
    }
    if (!value.is_object()) {
      file.errors.push_back({number, "expected a JSON object, got " + json_type(value)});
      continue;
    }
    file.lines.push_back({number, std::move(value)});
  }
  check(!stream.bad(), "{}: read error", path.string());
  if (file.empty) file.errors.push_back({0, "empty file (no JSON lines)"});
  return file;
}

}  // namespace flow2
