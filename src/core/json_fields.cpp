#include "core/json_fields.h"

#include <fstream>
#include <sstream>

#include "flow2/error.h"

namespace flow2 {
namespace {

using nlohmann::json;

const json* field(const json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

json read_json_file(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  check(stream.good(), "{}: cannot open", path.string());
  std::stringstream buffer;
  buffer << stream.rdbuf();
  json value;
  try {
    value = json::parse(buffer.str());
  } catch (const json::parse_error& error) {
    fail("{}: malformed JSON: {}", path.string(), error.what());
  }
  return value;
}

std::optional<int64_t> optional_int(const json& object, const std::string& key,
                                    const std::string& source) {
  const json* value = field(object, key);
  if (!value) return std::nullopt;
  check(value->is_number_integer(), "{}: '{}' must be an integer, got {}", source, key,
        value->dump());
  return value->get<int64_t>();
}

std::optional<double> optional_number(const json& object, const std::string& key,
                                      const std::string& source) {
  const json* value = field(object, key);
  if (!value) return std::nullopt;
  check(value->is_number(), "{}: '{}' must be a number, got {}", source, key, value->dump());
  return value->get<double>();
}

std::optional<bool> optional_bool(const json& object, const std::string& key,
                                  const std::string& source) {
  const json* value = field(object, key);
  if (!value) return std::nullopt;
  check(value->is_boolean(), "{}: '{}' must be true or false, got {}", source, key, value->dump());
  return value->get<bool>();
}

std::optional<std::string> optional_string(const json& object, const std::string& key,
                                           const std::string& source) {
  const json* value = field(object, key);
  if (!value) return std::nullopt;
  check(value->is_string(), "{}: '{}' must be a string, got {}", source, key, value->dump());
  return value->get<std::string>();
}

int64_t required_int(const json& object, const std::string& key, const std::string& source) {
  auto value = optional_int(object, key, source);
  check(value.has_value(), "{}: missing required key '{}'", source, key);
  return *value;
}

std::vector<int64_t> int_or_int_list(const json& object, const std::string& key,
                                     const std::string& source) {
  const json* value = field(object, key);
  if (!value) return {};
  if (value->is_number_integer()) return {value->get<int64_t>()};
  check(value->is_array(), "{}: '{}' must be an integer or a list of integers", source, key);
  std::vector<int64_t> values;
  for (const auto& item : *value) {
    check(item.is_number_integer(), "{}: '{}' must be an integer or a list of integers", source,
          key);
    values.push_back(item.get<int64_t>());
  }
  return values;
}

}  // namespace flow2
