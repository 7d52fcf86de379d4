// str(), repr() and type names of values, as Python prints them.
#include <charconv>
#include <cmath>

#include "chat/runtime_error.h"
#include "chat/unicode.h"
#include "chat/value.h"

namespace flow2::chat {

std::string type_name(const Value& value) {
  switch (value.type()) {
    case Value::Type::Undefined:
      return "Undefined";
    case Value::Type::None:
      return "NoneType";
    case Value::Type::Bool:
      return "bool";
    case Value::Type::Int:
      return "int";
    case Value::Type::Float:
      return "float";
    case Value::Type::String:
      return value.is_markup() ? "Markup" : "str";
    case Value::Type::List:
      switch (value.as_list().kind) {
        case ListKind::List:
          return "list";
        case ListKind::Tuple:
          return "tuple";
        case ListKind::Iterator:
          return "generator";
        case ListKind::DictKeys:
          return "dict_keys";
        case ListKind::DictValues:
          return "dict_values";
        case ListKind::DictItems:
          return "dict_items";
        case ListKind::Range:
          return "range";
      }
      break;
    case Value::Type::Dict:
      return "dict";
    case Value::Type::Object:
      return value.as_object().kind == ObjectKind::Namespace ? "Namespace" : "LoopContext";
    case Value::Type::Function:
      return "function";
  }
  return "object";
}

std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string_view text(buffer, static_cast<size_t>(result.ptr - buffer));
  std::string out;
  if (text.front() == '-') {
    out += '-';
    text.remove_prefix(1);
  }
  size_t e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e)) {
    if (c != '.') digits += c;
  }
  int exponent = 0;
  std::string_view exponent_text = text.substr(e + 1);
  if (exponent_text.front() == '+') exponent_text.remove_prefix(1);
  std::from_chars(exponent_text.data(), exponent_text.data() + exponent_text.size(), exponent);
  // Python's repr: positional notation when -4 <= exponent < 16, else scientific.
  int point = exponent + 1;  // digits before the decimal point
  int count = static_cast<int>(digits.size());
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      out += "0." + std::string(static_cast<size_t>(-point), '0') + digits;
    } else if (point >= count) {
      out += digits + std::string(static_cast<size_t>(point - count), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(point)) + "." +
             digits.substr(static_cast<size_t>(point));
    }
  } else {
    out += digits.substr(0, 1);
    if (count > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  }
  return out;
}

namespace {

// str.isprintable() for the code points that are not: controls, format characters, separators
// other than the space, private use. (Unassigned code points count as printable here.)
bool is_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c < 0x300) return true;
  if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x8E2 ||
      c == 0x180E || c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) ||
      (c >= 0xE000 && c <= 0xF8FF) || c == 0x110BD || c == 0x110CD ||
      (c >= 0x13430 && c <= 0x1343F) || (c >= 0x1BCA0 && c <= 0x1BCA3) ||
      (c >= 0x1D173 && c <= 0x1D17A) || (c >= 0xE0000 && c <= 0xE007F) || c >= 0xF0000) {
    return false;
  }
  return true;
}

void repr_into(std::string& out, const Value& value, int depth);

void repr_sequence(std::string& out, const std::vector<Value>& items, int depth) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    repr_into(out, items[i], depth + 1);
  }
}

void repr_into(std::string& out, const Value& value, int depth) {
  check_value_depth(depth);
  check_value_size(out.size());
  switch (value.type()) {
    case Value::Type::Undefined:
      out += "Undefined";
      return;
    case Value::Type::None:
      out += "None";
      return;
    case Value::Type::Bool:
      out += value.as_bool() ? "True" : "False";
      return;
    case Value::Type::Int:
      out += std::to_string(value.as_int());
      return;
    case Value::Type::Float:
      out += float_repr(value.as_float());
      return;
    case Value::Type::String:
      if (value.is_markup()) {
        out += "Markup(" + repr_string(value.as_string()) + ")";
      } else {
        out += repr_string(value.as_string());
      }
      return;
    case Value::Type::List: {
      const ListData& list = value.as_list();
      switch (list.kind) {
        case ListKind::List:
          out += '[';
          repr_sequence(out, list.items, depth);
          out += ']';
          return;
        case ListKind::Tuple:
          out += '(';
          repr_sequence(out, list.items, depth);
          out += list.items.size() == 1 ? ",)" : ")";
          return;
        case ListKind::DictKeys:
        case ListKind::DictValues:
        case ListKind::DictItems:
          out += type_name(value) + "([";
          repr_sequence(out, list.items, depth);
          out += "])";
          return;
        case ListKind::Iterator:
        case ListKind::Range:
          runtime_fail("cannot print a {} object (convert it with |list first)", type_name(value));
      }
      return;
    }
    case Value::Type::Dict: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.as_dict().entries) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, key, depth + 1);
        out += ": ";
        repr_into(out, item, depth + 1);
      }
      out += '}';
      return;
    }
    case Value::Type::Object: {
      const ObjectData& object = value.as_object();
      if (object.kind == ObjectKind::Loop) {
        const Value* index = object.find("index");
        const Value* length = object.find("length");
        out += fmt::format("<LoopContext {}/{}>", index ? to_str(*index) : "?",
                           length ? to_str(*length) : "?");
        return;
      }
      out += "<Namespace {";
      bool first = true;
      for (const auto& [name, item] : object.attributes) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(name) + ": ";
        repr_into(out, item, depth + 1);
      }
      out += "}>";
      return;
    }
    case Value::Type::Function:
      runtime_fail("cannot print {} '{}' (call it instead)", type_name(value),
                   value.as_function().name());
  }
}

}  // namespace

std::string repr_string(std::string_view text) {
  bool has_single = text.find('\'') != std::string_view::npos;
  bool has_double = text.find('"') != std::string_view::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t c = next_code_point(text, pos);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_printable(c)) {
      append_utf8(out, c);
    } else if (c < 0x100) {
      out += fmt::format("\\x{:02x}", static_cast<uint32_t>(c));
    } else if (c < 0x10000) {
      out += fmt::format("\\u{:04x}", static_cast<uint32_t>(c));
    } else {
      out += fmt::format("\\U{:08x}", static_cast<uint32_t>(c));
    }
  }
  out += quote;
  return out;
}

std::string repr(const Value& value) {
  std::string out;
  repr_into(out, value, 0);
  check_value_size(out.size());
  return out;
}

std::string to_str(const Value& value) {
  if (value.is_string()) return value.as_string();
  if (value.is_undefined()) return "";
  return repr(value);
}

}  // namespace flow2::chat
