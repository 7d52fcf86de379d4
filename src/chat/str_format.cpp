// Python's str.format() and its format-spec mini-language.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "chat/formatting.h"
#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

struct FormatSpec {
  std::string fill = " ";
  char align = 0;
  char sign = '-';
  bool alternate = false;
  int64_t width = 0;
  char grouping = 0;
  int64_t precision = -1;
  char type = 0;
  bool zero_align = false;  // no alignment, but the '0' flag: '=' for numbers
  bool sign_given = false;
};

FormatSpec parse_spec(std::string_view spec) {
  FormatSpec out;
  std::u32string text = to_code_points(spec);
  size_t i = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '=' || c == '^'; };
  bool fill_given = false;
  if (text.size() >= 2 && is_align(text[1])) {
    out.fill = to_utf8(text.substr(0, 1));
    out.align = static_cast<char>(text[1]);
    fill_given = true;
    i = 2;
  } else if (!text.empty() && is_align(text[0])) {
    out.align = static_cast<char>(text[0]);
    i = 1;
  }
  if (i < text.size() && (text[i] == '+' || text[i] == '-' || text[i] == ' ')) {
    out.sign = static_cast<char>(text[i++]);
    out.sign_given = true;
  }
  if (i < text.size() && text[i] == '#') {
    out.alternate = true;
    ++i;
  }
  // A '0' before the width pads with zeros (unless a fill was given), after the sign for numbers.
  if (i < text.size() && text[i] == '0') {
    if (!fill_given) out.fill.assign(1, '0');
    out.zero_align = !out.align;
    ++i;
  }
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    out.width = std::min<int64_t>(out.width * 10 + (text[i++] - '0'), 1 << 20);
  }
  if (i < text.size() && (text[i] == ',' || text[i] == '_'))
    out.grouping = static_cast<char>(text[i++]);
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (i >= text.size() || text[i] < '0' || text[i] > '9')
      runtime_fail("format specifier missing precision");
    out.precision = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      out.precision = std::min<int64_t>(out.precision * 10 + (text[i++] - '0'), 1 << 20);
    }
  }
  if (i < text.size()) out.type = static_cast<char>(text[i++]);
  if (i != text.size()) runtime_fail("invalid format specifier '{}'", spec);
  return out;
}

// Inserts `separator` every `group` digits into the run of digits that starts `body`; with
// `zero_width`, pads that run with zeros until the whole body is that wide, as Python does.
std::string group_digits(std::string body, char separator, size_t group, size_t zero_width) {
  size_t end = body.find_first_not_of("0123456789abcdefABCDEF");
  std::string digits = body.substr(0, end == std::string::npos ? body.size() : end);
  std::string rest = body.substr(digits.size());
  auto grouped = [&](const std::string& run) {
    std::string out;
    for (size_t i = 0; i < run.size(); ++i) {
      if (i > 0 && (run.size() - i) % group == 0) out += separator;
      out += run[i];
    }
    return out;
  };
  std::string out = grouped(digits);
  while (out.size() + rest.size() < zero_width) {
    digits.insert(0, 1, '0');
    out = grouped(digits);
  }
  return out + rest;
}

std::string format_with_spec(const Value& value, std::string_view spec_text) {
  if (spec_text.empty()) return to_str(value);
  FormatSpec spec = parse_spec(spec_text);
  size_t width = static_cast<size_t>(spec.width);
  if (value.is_string()) {
    if (spec.type && spec.type != 's') {
      runtime_fail("unknown format code '{}' for object of type 'str'", spec.type);
    }
    if (spec.sign_given || spec.alternate || spec.grouping) {
      runtime_fail("sign, '#' or grouping not allowed in string format specifier");
    }
    if (spec.align == '=') runtime_fail("'=' alignment not allowed in string format specifier");
    return pad("", truncate_code_points(value.as_string(), spec.precision), width,
               spec.align ? spec.align : '<', spec.fill);
  }
  if (!value.is_number()) {
    runtime_fail("unsupported format string passed to {}.__format__", type_name(value));
  }
  char type = spec.type;
  std::string sign;
  std::string body;
  size_t group = 3;
  if (value.is_integral() &&
      (!type || std::string_view("dbxXoc").find(type) != std::string_view::npos)) {
    if (spec.precision >= 0) runtime_fail("precision not allowed in integer format specifier");
    int64_t number = value.as_integral();
    if (type == 'c') {
      std::string unused_sign;
      body = percent_conversion(value, 'c', "", -1, unused_sign);
    } else {
      body = integer_digits(number, type ? type : 'd', spec.alternate);
      sign = sign_of(number < 0, spec.sign);
      if (spec.alternate && type && type != 'd') {  // the 0x prefix goes before any zero padding
        sign += body.substr(0, 2);
        body.erase(0, 2);
      }
      if (type && type != 'd') {
        if (spec.grouping == ',') runtime_fail("cannot specify ',' with '{}'", type);
        group = 4;
      }
    }
  } else {
    if (type && std::string_view("eEfFgG%").find(type) == std::string_view::npos) {
      runtime_fail("unknown format code '{}' for object of type '{}'", type, type_name(value));
    }
    if (spec.alternate || (!type && spec.precision >= 0)) {
      runtime_fail("format spec '{}' is not supported", spec_text);
    }
    double number = value.as_number();
    sign = sign_of(std::signbit(number) && !std::isnan(number), spec.sign);
    bool upper = type && std::isupper(type);
    if (std::isnan(number)) {
      body = upper ? "NAN" : "nan";
    } else if (std::isinf(number)) {
      body = upper ? "INF" : "inf";
    } else if (!type) {
      body = float_repr(std::fabs(number));
    } else {
      int precision =
          spec.precision < 0 ? 6 : static_cast<int>(std::min<int64_t>(spec.precision, 100));
      body = float_digits(std::fabs(number), type, precision);
    }
  }
  char align = spec.align ? spec.align : (spec.zero_align ? '=' : '>');
  if (spec.grouping) {
    bool zero_padded = align == '=' && spec.fill == "0";
    size_t sign_width = code_point_count(sign);
    body = group_digits(body, spec.grouping, group,
                        zero_padded && width > sign_width ? width - sign_width : 0);
  }
  return pad(sign, body, width, align, spec.fill);
}

}  // namespace

std::string str_format(std::string_view format, const CallArgs& args) {
  std::string out;
  size_t automatic = 0;
  bool used_automatic = false;
  bool used_manual = false;
  size_t i = 0;
  while (i < format.size()) {
    char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out += '}';
        i += 2;
        continue;
      }
      runtime_fail("single '}}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      i += 2;
      continue;
    }
    size_t close = i + 1;
    int brackets = 0;
    while (close < format.size() && (format[close] != '}' || brackets > 0)) {
      if (format[close] == '{') runtime_fail("nested replacement fields are not supported");
      brackets += format[close] == '[' ? 1 : format[close] == ']' ? -1 : 0;
      ++close;
    }
    if (close >= format.size()) runtime_fail("expected '}}' before end of string");
    std::string_view field = format.substr(i + 1, close - i - 1);
    i = close + 1;
    // field_name[!conversion][:spec]
    size_t end_name = 0;
    brackets = 0;
    while (end_name < field.size() &&
           (brackets > 0 || (field[end_name] != '!' && field[end_name] != ':'))) {
      brackets += field[end_name] == '[' ? 1 : field[end_name] == ']' ? -1 : 0;
      ++end_name;
    }
    std::string_view name = field.substr(0, end_name);
    char conversion = 0;
    std::string_view spec;
    size_t rest = end_name;
    if (rest < field.size() && field[rest] == '!') {
      if (rest + 1 >= field.size())
        runtime_fail("end of string while looking for conversion specifier");
      conversion = field[rest + 1];
      rest += 2;
      if (rest < field.size() && field[rest] != ':')
        runtime_fail("expected ':' after conversion specifier");
    }
    if (rest < field.size()) spec = field.substr(rest + 1);
    size_t first_end = 0;
    while (first_end < name.size() && name[first_end] != '.' && name[first_end] != '[') ++first_end;
    std::string_view head = name.substr(0, first_end);
    Value value;
    if (head.empty()) {
      if (used_manual)
        runtime_fail("cannot switch from manual field specification to automatic field numbering");
      used_automatic = true;
      if (automatic >= args.positional.size())
        runtime_fail("replacement index {} out of range", automatic);
      value = args.positional[automatic++];
    } else if (std::all_of(head.begin(), head.end(), is_digit)) {
      if (used_automatic)
        runtime_fail("cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      size_t index = 0;
      for (char d : head)
        index = std::min<size_t>(index * 10 + static_cast<size_t>(d - '0'), 1 << 20);
      if (index >= args.positional.size()) runtime_fail("replacement index {} out of range", index);
      value = args.positional[index];
    } else {
      auto it = std::find_if(args.keywords.begin(), args.keywords.end(),
                             [&](const auto& entry) { return entry.first == head; });
      if (it == args.keywords.end()) runtime_fail("KeyError: '{}'", head);
      value = it->second;
    }
    size_t p = first_end;
    while (p < name.size()) {
      if (name[p] == '.') {
        size_t q = p + 1;
        while (q < name.size() && name[q] != '.' && name[q] != '[') ++q;
        std::string attribute(name.substr(p + 1, q - p - 1));
        const Value* found = value.is_object() ? value.as_object().find(attribute) : nullptr;
        if (!found) runtime_fail("'{}' object has no attribute '{}'", type_name(value), attribute);
        value = *found;
        p = q;
      } else {
        size_t q = name.find(']', p);
        if (q == std::string_view::npos) runtime_fail("missing ']' in format string");
        std::string key(name.substr(p + 1, q - p - 1));
        Value index = !key.empty() && std::all_of(key.begin(), key.end(), is_digit)
                          ? Value(static_cast<int64_t>(
                                std::min<size_t>(std::stoull(key.substr(0, 9)), 1u << 30)))
                          : Value(key);
        if (value.is_dict()) {
          const Value* found = value.as_dict().find(index);
          if (!found) runtime_fail("KeyError: {}", repr(index));
          value = *found;
        } else if (value.is_list() && index.is_int() &&
                   value.as_list().kind != ListKind::Iterator &&
                   index.as_int() < static_cast<int64_t>(value.as_list().items.size())) {
          value = value.as_list().items[static_cast<size_t>(index.as_int())];
        } else {
          runtime_fail("cannot index '{}' with {}", type_name(value), repr(index));
        }
        p = q + 1;
      }
    }
    if (conversion == 's') {
      value = Value(to_str(value));
    } else if (conversion == 'r' || conversion == 'a') {
      value = Value(repr(value));
    } else if (conversion != 0) {
      runtime_fail("unknown conversion specifier {}", conversion);
    }
    out += format_with_spec(value, spec);
    check_value_size(out.size());
  }
  return out;
}

}  // namespace flow2::chat
