#include "chat/json_value.h"

#include <algorithm>
#include <cmath>

namespace flow2::chat {
namespace {

void dump_string(std::string& out, const std::string& text, bool ensure_ascii) {
  out += '"';
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t c = next_code_point(text, pos);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x7F && c < 0x10000)) {
          out += fmt::format("\\u{:04x}", static_cast<uint32_t>(c));
        } else if (ensure_ascii && c >= 0x10000) {
          char32_t v = c - 0x10000;
          out += fmt::format("\\u{:04x}\\u{:04x}", static_cast<uint32_t>(0xD800 + (v >> 10)),
                             static_cast<uint32_t>(0xDC00 + (v & 0x3FF)));
        } else {
          append_utf8(out, c);
        }
    }
  }
  out += '"';
}

std::string float_text(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return float_repr(value);
}

[[noreturn]] void not_serializable(const Value& value) {
  runtime_fail("Object of type {} is not JSON serializable", type_name(value));
}

std::string key_text(const Value& key) {
  switch (key.type()) {
    case Value::Type::String:
      return key.as_string();
    case Value::Type::Bool:
      return key.as_bool() ? "true" : "false";
    case Value::Type::None:
      return "null";
    case Value::Type::Int:
      return std::to_string(key.as_int());
    case Value::Type::Float:
      return float_text(key.as_float());
    default:
      runtime_fail("keys must be str, int, float, bool or None, not {}", type_name(key));
  }
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonOptions& options) : options_(options) {}

  void write(const Value& value, int level) {
    if (level > kMaxJsonDepth) runtime_fail("value nested more than {} levels deep", kMaxJsonDepth);
    count_value_work(1);
    check_value_size(out.size());
    switch (value.type()) {
      case Value::Type::None:
        out += "null";
        return;
      case Value::Type::Bool:
        out += value.as_bool() ? "true" : "false";
        return;
      case Value::Type::Int:
        out += std::to_string(value.as_int());
        return;
      case Value::Type::Float:
        out += float_text(value.as_float());
        return;
      case Value::Type::String:
        dump_string(out, value.as_string(), options_.ensure_ascii);
        return;
      case Value::Type::List: {
        const ListData& list = value.as_list();
        if (list.kind != ListKind::List && list.kind != ListKind::Tuple) not_serializable(value);
        if (list.items.empty()) {
          out += "[]";
          return;
        }
        out += '[';
        for (size_t i = 0; i < list.items.size(); ++i) {
          separator(i, level);
          write(list.items[i], level + 1);
        }
        close(level, ']');
        return;
      }
      case Value::Type::Dict: {
        const auto& entries = value.as_dict().entries;
        if (entries.empty()) {
          out += "{}";
          return;
        }
        std::vector<const std::pair<Value, Value>*> order;
        for (const auto& entry : entries) order.push_back(&entry);
        if (options_.sort_keys) {
          std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
            return compare(a->first, b->first) < 0;
          });
        }
        out += '{';
        for (size_t i = 0; i < order.size(); ++i) {
          separator(i, level);
          dump_string(out, key_text(order[i]->first), options_.ensure_ascii);
          out += options_.key_separator;
          write(order[i]->second, level + 1);
        }
        close(level, '}');
        return;
      }
      default:
        not_serializable(value);
    }
  }

  std::string out;

 private:
  // What goes before item i of a container at `level`: the item separator, then with an indent
  // a newline and the indentation of level + 1.
  void separator(size_t i, int level) {
    if (i > 0) out += options_.item_separator;
    if (options_.indent) newline(level + 1);
  }

  void close(int level, char bracket) {
    if (options_.indent) newline(level);
    out += bracket;
  }

  void newline(int level) {
    out += '\n';
    for (int k = 0; k < level; ++k) out += *options_.indent;
  }

  const JsonOptions& options_;
};

}  // namespace

std::string dump_json(const Value& value, const JsonOptions& options) {
  JsonWriter writer(options);
  writer.write(value, 0);
  check_value_size(writer.out.size());
  return std::move(writer.out);
}

}  // namespace flow2::chat
