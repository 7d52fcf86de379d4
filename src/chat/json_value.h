// Conversion between JSON and interpreter values: the render context in, and the tojson filter
// out (Python's json.dumps, as transformers' tojson calls it).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "chat/runtime_error.h"
#include "chat/unicode.h"
#include "chat/value.h"

namespace flow2::chat {

inline constexpr int kMaxJsonDepth = 400;

// JSON (nlohmann::json or nlohmann::ordered_json) to a value: objects become dicts in the
// iteration order of the JSON object. Throws RuntimeError for invalid UTF-8, integers beyond
// 64 bits and nesting deeper than kMaxJsonDepth.
template <typename Json>
Value value_from_json(const Json& json, int depth = 0) {
  if (depth > kMaxJsonDepth) runtime_fail("JSON nested more than {} levels deep", kMaxJsonDepth);
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value(json.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      auto value = json.template get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        runtime_fail("integer {} is beyond 64-bit integers", value);
      }
      return Value(static_cast<int64_t>(value));
    }
    case nlohmann::json::value_t::number_float:
      return Value(json.template get<double>());
    case nlohmann::json::value_t::string: {
      const auto& text = json.template get_ref<const std::string&>();
      if (!is_valid_utf8(text)) runtime_fail("a string is not valid UTF-8");
      return Value(text);
    }
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(value_from_json(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value dict = Value::dict();
      auto& entries = dict.as_dict().entries;
      entries.reserve(json.size());
      for (auto it = json.begin(); it != json.end(); ++it) {
        if (!is_valid_utf8(it.key())) runtime_fail("an object key is not valid UTF-8");
        entries.emplace_back(Value(it.key()), value_from_json(it.value(), depth + 1));
      }
      return dict;
    }
    default:
      runtime_fail("unsupported JSON value ({})", json.type_name());
  }
}

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // none: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};

// Python's json.dumps(value, ...): insertion order, float repr, NaN/Infinity, "\u00e9" escapes
// only with ensure_ascii. RuntimeError for values JSON cannot hold (undefined, functions, ...).
std::string dump_json(const Value& value, const JsonOptions& options);

}  // namespace flow2::chat
