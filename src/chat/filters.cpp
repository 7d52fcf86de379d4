// The filter table and the filters over strings and numbers.
#include "chat/filters.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>

#include "chat/access.h"
#include "chat/arguments.h"
#include "chat/formatting.h"
#include "chat/json_value.h"
#include "chat/operators.h"
#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {
namespace {

using FilterFunction = Value (*)(Interpreter&, const Value&, CallArgs);

std::string filter_name(std::string_view name) {
  return fmt::format("filter '{}'", name);
}

// Python's float(str): surrounding whitespace, an optional sign, digits with single underscores
// between them, "inf", "nan".
std::optional<double> parse_float(const std::string& raw) {
  std::u32string cps = to_code_points(raw);
  size_t begin = 0;
  size_t end = cps.size();
  while (begin < end && is_space(cps[begin])) ++begin;
  while (end > begin && is_space(cps[end - 1])) --end;
  std::string text;
  for (size_t i = begin; i < end; ++i) {
    char32_t c = cps[i];
    if (c >= 0x80) return std::nullopt;
    if (c == '_') {
      bool between = i > begin && i + 1 < end && cps[i - 1] >= '0' && cps[i - 1] <= '9' &&
                     cps[i + 1] >= '0' && cps[i + 1] <= '9';
      if (!between) return std::nullopt;
      continue;
    }
    text += static_cast<char>(c);
  }
  bool negative = false;
  std::string_view body = text;
  if (!body.empty() && (body.front() == '+' || body.front() == '-')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  if (body.empty() || body.front() == '+' || body.front() == '-') return std::nullopt;
  double value = 0;
  auto result = std::from_chars(body.data(), body.data() + body.size(), value);
  if (result.ptr != body.data() + body.size()) return std::nullopt;
  if (result.ec == std::errc::result_out_of_range) {
    bool tiny =
        body.find("e-") != std::string_view::npos || body.find("E-") != std::string_view::npos;
    value = tiny ? 0.0 : std::numeric_limits<double>::infinity();
  } else if (result.ec != std::errc()) {
    return std::nullopt;
  }
  return negative ? -value : value;
}

// Python's int(str, base), base 0 or 2..36.
std::optional<int64_t> parse_int(const std::string& raw, int64_t base) {
  std::string text = raw;
  size_t begin = text.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return std::nullopt;
  text = text.substr(begin, text.find_last_not_of(" \t\n\r\f\v") - begin + 1);
  bool negative = false;
  if (text[0] == '+' || text[0] == '-') {
    negative = text[0] == '-';
    text.erase(0, 1);
  }
  auto has_prefix = [&](char letter) {
    return text.size() > 2 && text[0] == '0' && (text[1] | 0x20) == letter;
  };
  if (base == 0) {
    base = has_prefix('x') ? 16 : has_prefix('o') ? 8 : has_prefix('b') ? 2 : 10;
    if (base == 10 && text.size() > 1 && text[0] == '0' &&
        text.find_first_not_of("0_") != std::string::npos) {
      return std::nullopt;  // "012" is not a base-0 literal
    }
  }
  if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) ||
      (base == 2 && has_prefix('b'))) {
    text.erase(0, 2);
    if (!text.empty() && text[0] == '_') text.erase(0, 1);
  }
  if (base < 2 || base > 36 || text.empty() || text.front() == '_' || text.back() == '_' ||
      text.find("__") != std::string::npos) {
    return std::nullopt;
  }
  std::erase(text, '_');
  uint64_t magnitude = 0;
  auto result =
      std::from_chars(text.data(), text.data() + text.size(), magnitude, static_cast<int>(base));
  if (result.ptr != text.data() + text.size()) return std::nullopt;
  if (result.ec != std::errc() ||
      magnitude > (negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1)) {
    runtime_fail("int(): '{}' is beyond 64-bit integers", raw);
  }
  return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
}

std::optional<int64_t> float_to_int(double value) {
  if (!std::isfinite(value)) return std::nullopt;
  double truncated = std::trunc(value);
  if (std::fabs(truncated) >= 9.2e18)
    runtime_fail("int(): {} is beyond 64-bit integers", float_repr(value));
  return static_cast<int64_t>(truncated);
}

Value filter_int(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("int"), std::move(args), {"default", "base"});
  Value fallback = bound.get_or(0, Value(int64_t{0}));
  std::optional<int64_t> result;
  if (input.is_integral()) {
    result = input.as_integral();
  } else if (input.is_float()) {
    result = float_to_int(input.as_float());
  } else if (input.is_string()) {
    int64_t base = bound.get_int(1, 10);
    result = parse_int(input.as_string(), base);
    if (!result) {
      if (auto number = parse_float(input.as_string())) result = float_to_int(*number);
    }
  }
  return result ? Value(*result) : fallback;
}

Value filter_float(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("float"), std::move(args), {"default"});
  if (input.is_number()) return Value(input.as_number());
  if (input.is_string()) {
    if (auto number = parse_float(input.as_string())) return Value(*number);
  }
  return bound.get_or(0, Value(0.0));
}

Value filter_abs(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("abs"), std::move(args), {});
  if (input.is_float()) return Value(std::fabs(input.as_float()));
  if (input.is_integral()) {
    int64_t value = input.as_integral();
    if (value == std::numeric_limits<int64_t>::min()) runtime_fail("integer overflow");
    return Value(value < 0 ? -value : value);
  }
  runtime_fail("bad operand type for abs(): '{}'", type_name(input));
}

// Python's round(int, -digits): to a multiple of 10**digits, ties to even.
int64_t round_integer(int64_t value, int64_t digits) {
  if (digits > 19) return 0;
  __int128 unit = 1;
  for (int64_t i = 0; i < digits; ++i) unit *= 10;
  __int128 x = value;
  __int128 quotient = x / unit;
  __int128 remainder = x % unit;
  if (remainder < 0) {  // floor division
    remainder += unit;
    quotient -= 1;
  }
  if (2 * remainder > unit || (2 * remainder == unit && quotient % 2 != 0)) quotient += 1;
  __int128 result = quotient * unit;
  if (result > std::numeric_limits<int64_t>::max() ||
      result < std::numeric_limits<int64_t>::min()) {
    runtime_fail("integer overflow");
  }
  return static_cast<int64_t>(result);
}

// Python's round(float, digits): the exact binary value rounded half to even at 10**-digits.
double round_float(double value, int64_t digits) {
  std::string text;
  if (digits >= 0) {
    text = fmt::format("{:.{}f}", value, static_cast<int>(digits));  // rounds ties to even
  } else {
    // The exact decimal expansion, rounded by hand at the 10**-digits place.
    std::string exact = fmt::format("{:.1100f}", std::fabs(value));
    std::string integer = exact.substr(0, exact.find('.'));
    std::string rest = exact.substr(exact.find('.') + 1);
    auto places = static_cast<size_t>(-digits);
    if (integer.size() < places + 1) integer.insert(0, places + 1 - integer.size(), '0');
    std::string kept = integer.substr(0, integer.size() - places);
    std::string dropped = integer.substr(integer.size() - places) + rest;
    int order = dropped[0] > '5' ? 1 : dropped[0] < '5' ? -1 : 0;
    if (order == 0) order = dropped.find_first_not_of('0', 1) != std::string::npos ? 1 : 0;
    if (order > 0 || (order == 0 && (kept.back() - '0') % 2 == 1)) {
      size_t i = kept.size();
      while (i > 0 && kept[i - 1] == '9') kept[--i] = '0';
      if (i == 0) {
        kept.insert(0, 1, '1');
      } else {
        ++kept[i - 1];
      }
    }
    text = (value < 0 ? "-" : "") + kept + std::string(places, '0');
  }
  double rounded = 0;
  std::from_chars(text.data(), text.data() + text.size(), rounded);
  return rounded;
}

Value filter_round(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("round"), std::move(args), {"precision", "method"});
  int64_t precision = bound.get_int(0, 0);
  std::string method = bound.get_string(1).value_or("common");
  if (method != "common" && method != "ceil" && method != "floor") {
    runtime_fail("method must be common, ceil or floor");
  }
  if (!input.is_number()) runtime_fail("type {} doesn't define __round__ method", type_name(input));
  if (method == "common") {
    if (input.is_integral()) {
      if (precision >= 0) return Value(input.as_integral());
      return Value(round_integer(input.as_integral(), -precision));
    }
    double value = input.as_float();
    if (precision > 330 || !std::isfinite(value)) return Value(value);
    if (precision < -330) return Value(std::copysign(0.0, value));
    return Value(round_float(value, precision));
  }
  if (precision > 22 || precision < -22) runtime_fail("round() precision out of range");
  double scale = std::pow(10.0, static_cast<double>(std::abs(precision)));
  double scaled = precision >= 0 ? input.as_number() * scale : input.as_number() / scale;
  if (!std::isfinite(scaled))
    runtime_fail("cannot convert float {} to integer", float_repr(scaled));
  double whole = method == "ceil" ? std::ceil(scaled) : std::floor(scaled);
  return Value(precision >= 0 ? whole / scale : whole * scale);
}

Value filter_default(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("default"), std::move(args), {"default_value", "boolean"});
  if (input.is_undefined() || (bound.get_flag(1, false) && !truthy(input))) {
    return bound.get_or(0, Value(""));
  }
  return input;
}

Value filter_string(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("string"), std::move(args), {});
  if (input.is_string()) return input;
  return Value(to_str(input));
}

Value filter_safe(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("safe"), std::move(args), {});
  return Value(to_str(input), true);
}

Value filter_escape(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("escape"), std::move(args), {});
  return html_escape(input);
}

Value filter_case(std::string_view name, const Value& input, CallArgs args) {
  Arguments(filter_name(name), std::move(args), {});
  std::string text = to_str(input);
  if (name == "lower") return Value(to_lower(text));
  if (name == "upper") return Value(to_upper(text));
  return Value(capitalize(text));
}

Value filter_lower(Interpreter&, const Value& input, CallArgs args) {
  return filter_case("lower", input, std::move(args));
}
Value filter_upper(Interpreter&, const Value& input, CallArgs args) {
  return filter_case("upper", input, std::move(args));
}
Value filter_capitalize(Interpreter&, const Value& input, CallArgs args) {
  return filter_case("capitalize", input, std::move(args));
}

// Jinja2's title filter (not str.title): words start after '-', whitespace, '(', '{', '[' or '<';
// their first character is upper-cased and the rest lower-cased.
Value filter_title(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("title"), std::move(args), {});
  std::u32string text = to_code_points(to_str(input));
  auto separator = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_space(c);
  };
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    bool separators = separator(text[i]);
    while (j < text.size() && separator(text[j]) == separators) ++j;
    std::string word = to_utf8(std::u32string_view(text).substr(i, j - i));
    if (separators) {
      out += word;
    } else {
      out += to_upper(to_utf8(std::u32string_view(text).substr(i, 1)));
      out += to_lower(to_utf8(std::u32string_view(text).substr(i + 1, j - i - 1)));
    }
    i = j;
  }
  return Value(std::move(out));
}

Value call_str_method(Interpreter& interpreter, std::string_view method, const Value& input,
                      CallArgs args) {
  return call_string_method(interpreter, Value(to_str(input)), method, std::move(args));
}

Value filter_trim(Interpreter& interpreter, const Value& input, CallArgs args) {
  Arguments bound(filter_name("trim"), std::move(args), {"chars"});
  CallArgs forwarded;
  if (bound.has(0)) forwarded.positional.push_back(bound.get(0));
  return call_str_method(interpreter, "strip", input, std::move(forwarded));
}

Value filter_center(Interpreter& interpreter, const Value& input, CallArgs args) {
  Arguments bound(filter_name("center"), std::move(args), {"width"});
  CallArgs forwarded;
  forwarded.positional.push_back(bound.get_or(0, Value(80)));
  return call_str_method(interpreter, "center", input, std::move(forwarded));
}

Value filter_replace(Interpreter& interpreter, const Value& input, CallArgs args) {
  Arguments bound(filter_name("replace"), std::move(args), {"old", "new", "count"});
  if (!bound.has(0) || !bound.has(1))
    runtime_fail("filter 'replace' needs the old and new strings");
  CallArgs forwarded;
  forwarded.positional = {Value(to_str(bound.get(0))), Value(to_str(bound.get(1)))};
  if (bound.has(2) && !bound.get(2).is_none()) forwarded.positional.push_back(bound.get(2));
  return call_str_method(interpreter, "replace", input, std::move(forwarded));
}

Value filter_indent(Interpreter& interpreter, const Value& input, CallArgs args) {
  Arguments bound(filter_name("indent"), std::move(args), {"width", "first", "blank"});
  Value width = bound.get_or(0, Value(4));
  std::string indentation;
  if (width.is_string()) {
    indentation = width.as_string();
  } else {
    int64_t count = require_int(width, "the width of filter 'indent'");
    check_value_size(static_cast<size_t>(std::max<int64_t>(count, 0)));
    indentation.assign(static_cast<size_t>(std::max<int64_t>(count, 0)), ' ');
  }
  // Jinja2 appends a newline and splits with str.splitlines(), so a final newline survives.
  Value lines_value = call_str_method(interpreter, "splitlines", Value(to_str(input) + "\n"), {});
  const auto& lines = lines_value.as_list().items;
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i].as_string();
    if (i > 0) out += '\n';
    bool indented = i == 0 ? bound.get_flag(1, false) : bound.get_flag(2, false) || !line.empty();
    if (indented) out += indentation;
    out += line;
    check_value_size(out.size());
  }
  return Value(std::move(out));
}

Value filter_format(Interpreter&, const Value& input, CallArgs args) {
  if (!args.positional.empty() && !args.keywords.empty()) {
    runtime_fail("filter 'format' can't handle positional and keyword arguments at the same time");
  }
  Value values;
  if (!args.keywords.empty()) {
    values = Value::dict();
    for (auto& [key, value] : args.keywords) values.as_dict().set(Value(key), std::move(value));
  } else {
    values = Value::list(std::move(args.positional), ListKind::Tuple);
  }
  return Value(percent_format(to_str(input), values));
}

// Jinja2's wordcount: the number of runs of word characters (\w). Outside ASCII that needs
// Unicode tables this interpreter does not have, so such text is refused.
Value filter_wordcount(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("wordcount"), std::move(args), {});
  int64_t count = 0;
  bool in_word = false;
  for (char c : to_str(input)) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      runtime_fail("filter 'wordcount' of non-ASCII text is not supported");
    }
    bool word = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_';
    if (word && !in_word) ++count;
    in_word = word;
  }
  return Value(count);
}

Value filter_length(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("length"), std::move(args), {});
  return Value(length(input));
}

Value filter_items(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("items"), std::move(args), {});
  if (input.is_undefined()) return Value::list({}, ListKind::Iterator);
  if (!input.is_dict()) runtime_fail("Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [key, value] : input.as_dict().entries) {
    pairs.push_back(Value::list({key, value}, ListKind::Tuple));
  }
  return Value::list(std::move(pairs), ListKind::Iterator);
}

Value filter_attr(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("attr"), std::move(args), {"name"});
  std::optional<std::string> name = bound.get_string(0, false);
  if (!name) runtime_fail("filter 'attr' needs an attribute name");
  return get_attribute_only(input, *name);
}

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False),
// which is json.dumps with those arguments (and no HTML escaping, unlike Jinja2's own).
Value filter_tojson(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("tojson"), std::move(args),
                  {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions options;
  options.ensure_ascii = bound.get_flag(0, false);
  const Value& indent = bound.get(1);
  if (indent.is_string()) {
    options.indent = indent.as_string();
  } else if (indent.is_integral()) {
    check_value_size(static_cast<size_t>(std::max<int64_t>(indent.as_integral(), 0)));
    options.indent =
        std::string(static_cast<size_t>(std::max<int64_t>(indent.as_integral(), 0)), ' ');
  } else if (!indent.is_none() && !indent.is_undefined()) {
    runtime_fail("tojson: indent must be an integer or a string, not {}", type_name(indent));
  }
  if (options.indent) options.item_separator.assign(1, ',');
  const Value& separators = bound.get(2);
  if (!separators.is_none() && !separators.is_undefined()) {
    std::vector<Value> pair = iterate(separators);
    if (pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      runtime_fail("tojson: separators must be an (item_separator, key_separator) pair of strings");
    }
    options.item_separator = pair[0].as_string();
    options.key_separator = pair[1].as_string();
  }
  options.sort_keys = bound.get_flag(3, false);
  return Value(dump_json(input, options));
}

struct FilterEntry {
  std::string_view name;
  FilterFunction function;  // null: a Jinja2 filter this interpreter does not implement
};

constexpr std::array kFilters = {
    FilterEntry{"abs", filter_abs},
    FilterEntry{"attr", filter_attr},
    FilterEntry{"batch", filter_batch},
    FilterEntry{"capitalize", filter_capitalize},
    FilterEntry{"center", filter_center},
    FilterEntry{"count", filter_length},
    FilterEntry{"d", filter_default},
    FilterEntry{"default", filter_default},
    FilterEntry{"dictsort", filter_dictsort},
    FilterEntry{"e", filter_escape},
    FilterEntry{"escape", filter_escape},
    FilterEntry{"filesizeformat", nullptr},
    FilterEntry{"first", filter_first},
    FilterEntry{"float", filter_float},
    FilterEntry{"forceescape", nullptr},
    FilterEntry{"format", filter_format},
    FilterEntry{"groupby", nullptr},
    FilterEntry{"indent", filter_indent},
    FilterEntry{"int", filter_int},
    FilterEntry{"items", filter_items},
    FilterEntry{"join", filter_join},
    FilterEntry{"last", filter_last},
    FilterEntry{"length", filter_length},
    FilterEntry{"list", filter_list},
    FilterEntry{"lower", filter_lower},
    FilterEntry{"map", filter_map},
    FilterEntry{"max", filter_max},
    FilterEntry{"min", filter_min},
    FilterEntry{"pprint", nullptr},
    FilterEntry{"random", nullptr},
    FilterEntry{"reject", filter_reject},
    FilterEntry{"rejectattr", filter_rejectattr},
    FilterEntry{"replace", filter_replace},
    FilterEntry{"reverse", filter_reverse},
    FilterEntry{"round", filter_round},
    FilterEntry{"safe", filter_safe},
    FilterEntry{"select", filter_select},
    FilterEntry{"selectattr", filter_selectattr},
    FilterEntry{"slice", nullptr},
    FilterEntry{"sort", filter_sort},
    FilterEntry{"string", filter_string},
    FilterEntry{"striptags", nullptr},
    FilterEntry{"sum", filter_sum},
    FilterEntry{"title", filter_title},
    FilterEntry{"tojson", filter_tojson},
    FilterEntry{"trim", filter_trim},
    FilterEntry{"truncate", nullptr},
    FilterEntry{"unique", filter_unique},
    FilterEntry{"upper", filter_upper},
    FilterEntry{"urlencode", nullptr},
    FilterEntry{"urlize", nullptr},
    FilterEntry{"wordcount", filter_wordcount},
    FilterEntry{"wordwrap", nullptr},
    FilterEntry{"xmlattr", nullptr},
};

const FilterEntry* find_filter(std::string_view name) {
  auto it = std::find_if(kFilters.begin(), kFilters.end(),
                         [&](const FilterEntry& entry) { return entry.name == name; });
  return it == kFilters.end() ? nullptr : &*it;
}

}  // namespace

bool is_jinja_filter(std::string_view name) {
  return find_filter(name) != nullptr;
}

Value apply_filter(Interpreter& interpreter, std::string_view name, const Value& input,
                   CallArgs args) {
  const FilterEntry* entry = find_filter(name);
  if (!entry) runtime_fail("unknown filter '{}'", name);
  if (!entry->function) runtime_fail("filter '{}' is not supported", name);
  return entry->function(interpreter, input, std::move(args));
}

}  // namespace flow2::chat
