// Python's printf-style formatting (format % args), and the padding and digits it shares
// with str.format().
#include "chat/formatting.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "chat/arguments.h"
#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

// Pads `body` (whose sign, if any, is `sign`) to `width` code points.
std::string pad(std::string sign, std::string body, size_t width, char align, std::string fill) {
  size_t length = code_point_count(sign) + code_point_count(body);
  if (length >= width) return sign + body;
  size_t missing = width - length;
  auto repeat = [&](size_t count) {
    std::string out;
    for (size_t i = 0; i < count; ++i) out += fill;
    return out;
  };
  switch (align) {
    case '<':
      return sign + body + repeat(missing);
    case '^':
      return repeat(missing / 2) + sign + body + repeat(missing - missing / 2);
    case '=':
      return sign + repeat(missing) + body;
    default:
      return repeat(missing) + sign + body;
  }
}

std::string integer_digits(int64_t value, char type, bool alternate) {
  uint64_t magnitude = value < 0 ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  switch (type) {
    case 'x':
      return (alternate ? "0x" : "") + fmt::format("{:x}", magnitude);
    case 'X':
      return (alternate ? "0X" : "") + fmt::format("{:X}", magnitude);
    case 'o':
      return (alternate ? "0o" : "") + fmt::format("{:o}", magnitude);
    case 'b':
      return (alternate ? "0b" : "") + fmt::format("{:b}", magnitude);
    default:
      return std::to_string(magnitude);
  }
}

// %e %f %g (and uppercase) of a finite or infinite double, without the sign.
std::string float_digits(double magnitude, char type, int precision) {
  switch (type) {
    case 'e':
      return fmt::format("{:.{}e}", magnitude, precision);
    case 'E':
      return fmt::format("{:.{}E}", magnitude, precision);
    case 'f':
      return fmt::format("{:.{}f}", magnitude, precision);
    case 'F':
      return fmt::format("{:.{}F}", magnitude, precision);
    case 'g':
      return fmt::format("{:.{}g}", magnitude, std::max(precision, 1));
    case 'G':
      return fmt::format("{:.{}G}", magnitude, std::max(precision, 1));
    case '%':
      return fmt::format("{:.{}f}%", magnitude * 100, precision);
    default:
      runtime_fail("unsupported float format '{}'", type);
  }
}

std::string sign_of(bool negative, char sign_flag) {
  if (negative) return "-";
  if (sign_flag == '+') return "+";
  if (sign_flag == ' ') return " ";
  return "";
}

std::string truncate_code_points(const std::string& text, int64_t precision) {
  if (precision < 0) return text;
  size_t pos = 0;
  for (int64_t i = 0; i < precision && pos < text.size(); ++i) next_code_point(text, pos);
  return text.substr(0, pos);
}

static Value percent_number(const Value& arg, char conversion) {
  if (!arg.is_number()) {
    runtime_fail("%{} format: a real number is required, not {}", conversion, type_name(arg));
  }
  return arg;
}

std::string percent_conversion(const Value& arg, char conversion, const std::string& flags,
                               int64_t precision, std::string& sign) {
  bool alternate = flags.find('#') != std::string::npos;
  char sign_flag = flags.find('+') != std::string::npos   ? '+'
                   : flags.find(' ') != std::string::npos ? ' '
                                                          : 0;
  switch (conversion) {
    case 's':
      return truncate_code_points(to_str(arg), precision);
    case 'r':
    case 'a':
      return truncate_code_points(repr(arg), precision);
    case 'd':
    case 'i':
    case 'u':
    case 'x':
    case 'X':
    case 'o': {
      Value number = percent_number(arg, conversion);
      if (number.is_float() && conversion != 'd' && conversion != 'i' && conversion != 'u') {
        runtime_fail("%{} format: an integer is required, not float", conversion);
      }
      if (number.is_float() && !std::isfinite(number.as_float())) {
        runtime_fail("cannot convert float {} to integer", float_repr(number.as_float()));
      }
      double truncated = number.is_float() ? std::trunc(number.as_float()) : 0;
      if (number.is_float() && std::fabs(truncated) >= 9.2e18) runtime_fail("integer overflow");
      int64_t value = number.is_float() ? static_cast<int64_t>(truncated) : number.as_integral();
      std::string digits = integer_digits(
          value, conversion == 'u' || conversion == 'i' ? 'd' : conversion, alternate);
      if (precision > static_cast<int64_t>(digits.size())) {
        digits.insert(0, static_cast<size_t>(precision) - digits.size(), '0');
      }
      sign = sign_of(value < 0, sign_flag);
      return digits;
    }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G': {
      double value = percent_number(arg, conversion).as_number();
      sign = sign_of(std::signbit(value) && !std::isnan(value), sign_flag);
      return float_digits(std::fabs(value), conversion,
                          precision < 0 ? 6 : static_cast<int>(std::min<int64_t>(precision, 100)));
    }
    case 'c':
      if (arg.is_string() && code_point_count(arg.as_string()) == 1) return arg.as_string();
      if (arg.is_integral() && arg.as_integral() >= 0 && arg.as_integral() <= 0x10FFFF &&
          !(arg.as_integral() >= 0xD800 && arg.as_integral() <= 0xDFFF)) {
        std::string out;
        append_utf8(out, static_cast<char32_t>(arg.as_integral()));
        return out;
      }
      runtime_fail("%c requires an int or a single character");
    default:
      runtime_fail("unsupported format character '{}'", conversion);
  }
}

std::string percent_format(std::string_view format, const Value& args) {
  std::vector<Value> positional;
  const DictData* mapping = args.is_dict() ? &args.as_dict() : nullptr;
  if (args.is_list_kind(ListKind::Tuple)) {
    positional = args.as_list().items;
  } else {
    positional.push_back(args);
  }
  size_t next_arg = 0;
  auto take = [&]() -> const Value& {
    if (next_arg >= positional.size()) runtime_fail("not enough arguments for format string");
    return positional[next_arg++];
  };
  std::string out;
  size_t i = 0;
  while (i < format.size()) {
    if (format[i] != '%') {
      out += format[i++];
      continue;
    }
    if (++i >= format.size()) runtime_fail("incomplete format");
    Value keyed;
    bool has_key = false;
    if (format[i] == '(') {
      if (!mapping) runtime_fail("format requires a mapping");
      size_t depth = 1;
      size_t start = ++i;
      while (i < format.size() && depth > 0) {
        depth += format[i] == '(' ? 1 : format[i] == ')' ? -1 : 0;
        ++i;
      }
      if (depth > 0) runtime_fail("incomplete format key");
      std::string key(format.substr(start, i - 1 - start));
      const Value* found = mapping->find(Value(key));
      if (!found) runtime_fail("KeyError: '{}'", key);
      keyed = *found;
      has_key = true;
    }
    std::string flags;
    while (i < format.size() &&
           std::string_view("-+ #0").find(format[i]) != std::string_view::npos) {
      flags += format[i++];
    }
    int64_t width = 0;
    if (i < format.size() && format[i] == '*') {
      width = require_int(take(), "'*' in a format");
      ++i;
    } else {
      while (i < format.size() && is_digit(format[i]))
        width = std::min<int64_t>(width * 10 + (format[i++] - '0'), 1 << 20);
    }
    int64_t precision = -1;
    if (i < format.size() && format[i] == '.') {
      ++i;
      precision = 0;
      if (i < format.size() && format[i] == '*') {
        precision = require_int(take(), "'*' in a format");
        ++i;
      } else {
        while (i < format.size() && is_digit(format[i]))
          precision = std::min<int64_t>(precision * 10 + (format[i++] - '0'), 1 << 20);
      }
    }
    while (i < format.size() && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= format.size()) runtime_fail("incomplete format");
    char conversion = format[i++];
    if (conversion == '%') {
      out += '%';
      continue;
    }
    const Value& arg = has_key ? keyed : take();
    std::string sign;
    std::string body = percent_conversion(arg, conversion, flags, precision, sign);
    if (flags.find('#') != std::string::npos &&
        std::string_view("xXo").find(conversion) != std::string_view::npos) {
      sign += body.substr(0, 2);  // zero padding goes after the 0x prefix
      body.erase(0, 2);
    }
    bool left = flags.find('-') != std::string::npos;
    bool numeric = std::string_view("diuxXoeEfFgG").find(conversion) != std::string_view::npos;
    bool zeros = numeric && !left && flags.find('0') != std::string::npos;
    out += pad(sign, body, static_cast<size_t>(std::max<int64_t>(width, 0)),
               left ? '<' : (zeros ? '=' : '>'), zeros ? "0" : " ");
    check_value_size(out.size());
  }
  if (!mapping && next_arg < positional.size()) {
    runtime_fail("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace flow2::chat
