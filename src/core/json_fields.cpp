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

namespace {

// The field as T if present; an error naming `what` if it has another JSON type.
template <typename T>
std::optional<T> typed_field(const json& object, const std::string& key, const std::string& source,
                             bool (json::*is_type)() const noexcept, const char* what) {
  const json* value = field(object, key);
  if (!value) return std::nullopt;
  check((value->*is_type)(), "{}: '{}' must be {}, got {}", source, key, what, value->dump());
  return value->get<T>();
}

}  // namespace

std::optional<int64_t> optional_int(const json& object, const std::string& key,
                                    const std::string& source) {
  return typed_field<int64_t>(object, key, source, &json::is_number_integer, "an integer");
}

std::optional<double> optional_number(const json& object, const std::string& key,
                                      const std::string& source) {
  return typed_field<double>(object, key, source, &json::is_number, "a number");
}

std::optional<bool> optional_bool(const json& object, const std::string& key,
                                  const std::string& source) {
  return typed_field<bool>(object, key, source, &json::is_boolean, "true or false");
}

std::optional<std::string> optional_string(const json& object, const std::string& key,
                                           const std::string& source) {
  return typed_field<std::string>(object, key, source, &json::is_string, "a string");
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
