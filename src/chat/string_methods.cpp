// Methods of str values, with Python's semantics over code points.
#include <algorithm>
#include <array>

#include "chat/access.h"
#include "chat/arguments.h"
#include "chat/formatting.h"
#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {
namespace {

constexpr std::array<std::string_view, 36> kSupported = {
    "capitalize", "center",       "count",        "endswith", "find",    "format",
    "index",      "isalnum",      "isalpha",      "isascii",  "isdigit", "islower",
    "isspace",    "isupper",      "join",         "ljust",    "lower",   "lstrip",
    "partition",  "removeprefix", "removesuffix", "replace",  "rfind",   "rindex",
    "rjust",      "rpartition",   "rsplit",       "rstrip",   "split",   "splitlines",
    "startswith", "strip",        "swapcase",     "title",    "upper",   "zfill"};
constexpr std::array<std::string_view, 11> kUnsupported = {
    "casefold",  "encode",      "expandtabs", "format_map", "isdecimal", "isidentifier",
    "isnumeric", "isprintable", "istitle",    "maketrans",  "translate"};

std::string joined(const std::u32string& text, size_t from, size_t to) {
  return to_utf8(std::u32string_view(text).substr(from, to - from));
}

// The [start, end) code point range of text[start:end] with Python's clamping; `beyond` when
// start is past the end, where Python's find, count and startswith give up.
struct Bounds {
  size_t start;
  size_t end;
  bool beyond;
};

Bounds bounds(const Arguments& args, size_t start_index, size_t length) {
  auto n = static_cast<int64_t>(length);
  auto adjust = [n](const Value& bound, int64_t fallback) {
    if (bound.is_undefined() || bound.is_none()) return fallback;
    int64_t index = require_int(bound, "slice index");
    if (index < 0) index = std::max<int64_t>(index + n, 0);
    return index;
  };
  int64_t start = adjust(args.get(start_index), 0);
  int64_t end = std::min(adjust(args.get(start_index + 1), n), n);
  bool beyond = start > n;
  start = std::min(start, n);
  return {static_cast<size_t>(start), static_cast<size_t>(std::max(start, end)), beyond};
}

std::string strip(const std::string& text, const Value& chars, bool left, bool right) {
  if (!chars.is_undefined() && !chars.is_none() && !chars.is_string()) {
    runtime_fail("strip arg must be None or str");
  }
  bool whitespace = !chars.is_string();
  std::u32string set = whitespace ? U"" : to_code_points(chars.as_string());
  auto stripped = [&](char32_t c) {
    return whitespace ? is_space(c) : set.find(c) != std::u32string::npos;
  };
  std::u32string cps = to_code_points(text);
  size_t begin = 0;
  size_t end = cps.size();
  if (left) {
    while (begin < end && stripped(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && stripped(cps[end - 1])) --end;
  }
  return joined(cps, begin, end);
}

Value split(const std::string& text, const Value& separator, int64_t maxsplit, bool from_right) {
  std::vector<Value> parts;
  if (separator.is_undefined() || separator.is_none()) {
    std::u32string cps = to_code_points(text);
    if (!from_right) {
      size_t i = 0;
      while (true) {
        while (i < cps.size() && is_space(cps[i])) ++i;
        if (i >= cps.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          parts.emplace_back(joined(cps, i, cps.size()));
          break;
        }
        size_t j = i;
        while (j < cps.size() && !is_space(cps[j])) ++j;
        parts.emplace_back(joined(cps, i, j));
        i = j;
      }
    } else {
      size_t i = cps.size();
      while (true) {
        while (i > 0 && is_space(cps[i - 1])) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          parts.emplace_back(joined(cps, 0, i));
          break;
        }
        size_t j = i;
        while (j > 0 && !is_space(cps[j - 1])) --j;
        parts.emplace_back(joined(cps, j, i));
        i = j;
      }
      std::reverse(parts.begin(), parts.end());
    }
    return Value::list(std::move(parts));
  }
  if (!separator.is_string()) runtime_fail("must be str or None, not {}", type_name(separator));
  const std::string& sep = separator.as_string();
  if (sep.empty()) runtime_fail("empty separator");
  count_value_work(text.size() / 16);
  if (!from_right) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      size_t found = text.find(sep, start);
      if (found == std::string::npos) break;
      parts.emplace_back(text.substr(start, found - start));
      start = found + sep.size();
    }
    parts.emplace_back(text.substr(start));
  } else {
    size_t end = text.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sep.size()) break;
      size_t found = text.rfind(sep, end - sep.size());
      if (found == std::string::npos) break;
      parts.emplace_back(text.substr(found + sep.size(), end - found - sep.size()));
      end = found;
    }
    parts.emplace_back(text.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  return Value::list(std::move(parts));
}

Value splitlines(const std::string& text, bool keep_ends) {
  std::u32string cps = to_code_points(text);
  std::vector<Value> lines;
  size_t start = 0;
  size_t i = 0;
  while (i < cps.size()) {
    if (!is_line_break(cps[i])) {
      ++i;
      continue;
    }
    size_t end = i + (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n' ? 2 : 1);
    lines.emplace_back(joined(cps, start, keep_ends ? end : i));
    start = i = end;
  }
  if (start < cps.size()) lines.emplace_back(joined(cps, start, cps.size()));
  return Value::list(std::move(lines));
}

std::string replace(const std::string& text, const std::string& old_text,
                    const std::string& new_text, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (old_text.empty()) {
    std::u32string cps = to_code_points(text);
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      if (i < cps.size()) append_utf8(out, cps[i]);
      check_value_size(out.size());
    }
    return out;
  }
  size_t start = 0;
  while (count < 0 || done < count) {
    size_t found = text.find(old_text, start);
    if (found == std::string::npos) break;
    out.append(text, start, found - start);
    out += new_text;
    check_value_size(out.size());
    start = found + old_text.size();
    ++done;
  }
  out.append(text, start, std::string::npos);
  check_value_size(out.size());
  return out;
}

// find/rfind/index/rindex/count over text[start:end], in code points.
Value search(std::string_view name, const std::string& text, const Arguments& args) {
  const Value& sub_value = args.get(0);
  if (!sub_value.is_string())
    runtime_fail("{} argument must be str, not {}", args.what(), type_name(sub_value));
  std::u32string cps = to_code_points(text);
  std::u32string sub = to_code_points(sub_value.as_string());
  auto [start, end, beyond] = bounds(args, 1, cps.size());
  count_value_work(cps.size() / 8);
  std::u32string_view window = std::u32string_view(cps).substr(start, end - start);
  if (name == "count") {
    if (beyond) return Value(int64_t{0});
    if (sub.empty()) return Value(static_cast<int64_t>(window.size() + 1));
    int64_t total = 0;
    for (size_t at = window.find(sub); at != std::u32string_view::npos;
         at = window.find(sub, at + sub.size())) {
      ++total;
    }
    return Value(total);
  }
  bool reverse = name == "rfind" || name == "rindex";
  size_t at = reverse ? window.rfind(sub) : window.find(sub);
  if (beyond || at == std::u32string_view::npos) {
    if (name == "index" || name == "rindex") runtime_fail("substring not found");
    return Value(int64_t{-1});
  }
  return Value(static_cast<int64_t>(start + at));
}

Value affix_test(std::string_view name, const std::string& text, const Arguments& args) {
  std::u32string cps = to_code_points(text);
  auto [start, end, beyond] = bounds(args, 1, cps.size());
  if (beyond) return Value(false);
  std::u32string_view window = std::u32string_view(cps).substr(start, end - start);
  const Value& affix = args.get(0);
  std::vector<Value> candidates;
  if (affix.is_list_kind(ListKind::Tuple)) {
    candidates = affix.as_list().items;
  } else {
    candidates.push_back(affix);
  }
  for (const Value& candidate : candidates) {
    if (!candidate.is_string()) {
      runtime_fail("{} first arg must be str or a tuple of str, not {}", args.what(),
                   type_name(candidate));
    }
    std::u32string piece = to_code_points(candidate.as_string());
    bool match = name == "startswith" ? window.starts_with(piece) : window.ends_with(piece);
    if (match) return Value(true);
  }
  return Value(false);
}

Value justify(std::string_view name, const std::string& text, const Arguments& args) {
  int64_t width = args.get_int(0, 0);
  std::string fill = " ";
  if (args.has(1)) {
    const Value& fill_value = args.get(1);
    if (!fill_value.is_string() || code_point_count(fill_value.as_string()) != 1) {
      runtime_fail("the fill character must be exactly one character long");
    }
    fill = fill_value.as_string();
  }
  auto length = static_cast<int64_t>(code_point_count(text));
  if (width <= length) return Value(text);
  check_value_size(static_cast<size_t>(width));
  check_value_size(static_cast<size_t>(width) * fill.size());
  int64_t missing = width - length;
  int64_t left = name == "rjust"   ? missing
                 : name == "ljust" ? 0
                                   : missing / 2 + (missing & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += text;
  for (int64_t i = left; i < missing; ++i) out += fill;
  return Value(std::move(out));
}

bool all_ascii(const std::string& text, std::string_view what) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80)
      runtime_fail("str.{}() of non-ASCII text is not supported", what);
  }
  return true;
}

template <typename Predicate>
Value all_chars(const std::string& text, std::string_view what, Predicate predicate) {
  all_ascii(text, what);
  return Value(!text.empty() && std::all_of(text.begin(), text.end(), predicate));
}

}  // namespace

MethodKind string_method_kind(std::string_view name) {
  if (std::find(kSupported.begin(), kSupported.end(), name) != kSupported.end()) {
    return MethodKind::Supported;
  }
  if (std::find(kUnsupported.begin(), kUnsupported.end(), name) != kUnsupported.end()) {
    return MethodKind::Unsupported;
  }
  return MethodKind::None;
}

Value call_string_method(Interpreter&, const Value& self, std::string_view name, CallArgs args) {
  const std::string& text = self.as_string();
  std::string what = fmt::format("str.{}()", name);
  if (name == "format") return Value(str_format(text, args));
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Arguments bound(what, std::move(args), {"chars"});
    return Value(strip(text, bound.get(0), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Arguments bound(what, std::move(args), {"sep", "maxsplit"});
    return split(text, bound.get(0), bound.get_int(1, -1), name == "rsplit");
  }
  if (name == "splitlines") {
    Arguments bound(what, std::move(args), {"keepends"});
    return splitlines(text, bound.get_int(0, 0) != 0);
  }
  if (name == "startswith" || name == "endswith") {
    Arguments bound(what, std::move(args), {"prefix", "start", "end"});
    if (!bound.has(0)) runtime_fail("{} takes at least 1 argument (0 given)", what);
    return affix_test(name, text, bound);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    Arguments bound(what, std::move(args), {"sub", "start", "end"});
    if (!bound.has(0)) runtime_fail("{} takes at least 1 argument (0 given)", what);
    return search(name, text, bound);
  }
  if (name == "replace") {
    Arguments bound(what, std::move(args), {"old", "new", "count"});
    std::optional<std::string> old_text = bound.get_string(0, false);
    std::optional<std::string> new_text = bound.get_string(1, false);
    if (!old_text || !new_text) runtime_fail("{} takes at least 2 arguments", what);
    return Value(replace(text, *old_text, *new_text, bound.get_int(2, -1)));
  }
  if (name == "zfill") {
    Arguments bound(what, std::move(args), {"width"});
    if (!bound.has(0)) runtime_fail("{} takes exactly one argument (0 given)", what);
    int64_t width = bound.get_int(0, 0);
    auto length = static_cast<int64_t>(code_point_count(text));
    if (width <= length) return Value(text);
    check_value_size(static_cast<size_t>(width));
    size_t sign = !text.empty() && (text[0] == '+' || text[0] == '-') ? 1 : 0;
    return Value(text.substr(0, sign) + std::string(static_cast<size_t>(width - length), '0') +
                 text.substr(sign));
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    Arguments bound(what, std::move(args), {"width", "fillchar"});
    if (!bound.has(0)) runtime_fail("{} takes at least 1 argument (0 given)", what);
    return justify(name, text, bound);
  }
  if (name == "partition" || name == "rpartition") {
    Arguments bound(what, std::move(args), {"sep"});
    std::optional<std::string> sep = bound.get_string(0, false);
    if (!sep) runtime_fail("{} takes exactly one argument", what);
    if (sep->empty()) runtime_fail("empty separator");
    size_t found = name == "partition" ? text.find(*sep) : text.rfind(*sep);
    std::vector<Value> parts;
    if (found == std::string::npos) {
      parts = name == "partition" ? std::vector<Value>{Value(text), Value(""), Value("")}
                                  : std::vector<Value>{Value(""), Value(""), Value(text)};
    } else {
      parts = {Value(text.substr(0, found)), Value(*sep), Value(text.substr(found + sep->size()))};
    }
    return Value::list(std::move(parts), ListKind::Tuple);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    Arguments bound(what, std::move(args), {"affix"});
    std::optional<std::string> affix = bound.get_string(0, false);
    if (!affix) runtime_fail("{} takes exactly one argument", what);
    if (name == "removeprefix" && text.starts_with(*affix))
      return Value(text.substr(affix->size()));
    if (name == "removesuffix" && !affix->empty() && text.ends_with(*affix)) {
      return Value(text.substr(0, text.size() - affix->size()));
    }
    return Value(text);
  }
  if (name == "join") {
    Arguments bound(what, std::move(args), {"iterable"});
    std::vector<Value> items = iterate(bound.get(0));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        runtime_fail("sequence item {}: expected str instance, {} found", i, type_name(items[i]));
      }
      if (i > 0) out += text;
      out += items[i].as_string();
      check_value_size(out.size());
    }
    return Value(std::move(out));
  }
  Arguments(what, std::move(args), {});  // the rest take no arguments
  if (name == "upper") return Value(to_upper(text));
  if (name == "lower") return Value(to_lower(text));
  if (name == "title") return Value(to_title(text));
  if (name == "capitalize") return Value(capitalize(text));
  if (name == "swapcase") return Value(swap_case(text));
  if (name == "islower") return Value(is_lower(text));
  if (name == "isupper") return Value(is_upper(text));
  if (name == "isascii") {
    return Value(std::all_of(text.begin(), text.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
  }
  if (name == "isspace") {
    std::u32string cps = to_code_points(text);
    return Value(!cps.empty() && std::all_of(cps.begin(), cps.end(), is_space));
  }
  if (name == "isdigit") return all_chars(text, name, [](char c) { return c >= '0' && c <= '9'; });
  if (name == "isalpha") {
    return all_chars(text, name, [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; });
  }
  return all_chars(text, name, [](char c) {  // isalnum
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  });
}

}  // namespace flow2::chat
