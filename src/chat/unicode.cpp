#include "chat/unicode.h"

#include "core/utf8.h"

#include <algorithm>
#include <cstdint>

#include "chat/unicode_case_table.h"

namespace flow2::chat {

bool is_valid_utf8(std::string_view text) {
  return utf8::is_valid(text);
}

char32_t next_code_point(std::string_view text, size_t& pos) {
  auto byte = static_cast<unsigned char>(text[pos++]);
  if (byte < 0x80) return byte;
  int extra = byte >= 0xF0 ? 3 : byte >= 0xE0 ? 2 : 1;
  char32_t code_point = byte & (0x3F >> extra);
  for (int k = 0; k < extra && pos < text.size(); ++k) {
    code_point = (code_point << 6) | (static_cast<unsigned char>(text[pos++]) & 0x3F);
  }
  return code_point;
}

void append_utf8(std::string& out, char32_t c) {
  utf8::append(out, c);
}

std::u32string to_code_points(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) out += next_code_point(text, pos);
  return out;
}

std::string to_utf8(std::u32string_view code_points) {
  std::string out;
  out.reserve(code_points.size());
  for (char32_t c : code_points) append_utf8(out, c);
  return out;
}

size_t code_point_count(std::string_view text) {
  size_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

bool is_space(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

namespace {

enum class Mapping { Lower, Upper, Title };

const SpecialCase* find_special(char32_t c) {
  const SpecialCase* end = kSpecialCases + kSpecialCaseCount;
  const SpecialCase* it = std::lower_bound(
      kSpecialCases, end, c,
      [](const SpecialCase& entry, char32_t value) { return entry.code_point < value; });
  return it != end && it->code_point == c ? it : nullptr;
}

const CaseRange* find_range(char32_t c) {
  const CaseRange* end = kCaseRanges + kCaseRangeCount;
  const CaseRange* it =
      std::upper_bound(kCaseRanges, end, c,
                       [](char32_t value, const CaseRange& range) { return value < range.first; });
  if (it == kCaseRanges) return nullptr;
  --it;
  return c <= it->last ? it : nullptr;
}

// In a run of pairs, whether c is the upper case one.
bool pair_upper(const CaseRange& range, char32_t c) {
  return (c % 2 == 0) == ((range.flags & kPairsEven) != 0);
}

uint8_t case_flags(char32_t c) {
  if (const SpecialCase* special = find_special(c)) return special->flags;
  const CaseRange* range = find_range(c);
  if (!range) return 0;
  if (range->flags & (kPairsEven | kPairsOdd))
    return pair_upper(*range, c) ? kUpperCase : kLowerCase;
  return range->flags;
}

bool is_cased(char32_t c) {
  return case_flags(c) != 0;
}

bool is_case_ignorable(char32_t c) {
  const IgnorableRange* end = kCaseIgnorable + kCaseIgnorableCount;
  const IgnorableRange* it = std::upper_bound(
      kCaseIgnorable, end, c,
      [](char32_t value, const IgnorableRange& range) { return value < range.first; });
  return it != kCaseIgnorable && c <= (it - 1)->last;
}

void append_mapping(std::u32string& out, char32_t c, Mapping mapping) {
  if (const SpecialCase* special = find_special(c)) {
    const char32_t* mapped = mapping == Mapping::Lower   ? special->lower
                             : mapping == Mapping::Upper ? special->upper
                                                         : special->title;
    for (int k = 0; k < 3 && mapped[k] != 0; ++k) out += mapped[k];
    return;
  }
  const CaseRange* range = find_range(c);
  if (!range) {
    out += c;
  } else if (range->flags & (kPairsEven | kPairsOdd)) {
    bool upper = pair_upper(*range, c);
    out += mapping == Mapping::Lower ? (upper ? c + 1 : c) : (upper ? c : c - 1);
  } else {
    int32_t delta = mapping == Mapping::Lower ? range->lower_delta : range->upper_delta;
    out += static_cast<char32_t>(static_cast<int32_t>(c) + delta);
  }
}

// Python lowercases a capital sigma to the final form after a cased letter when no cased letter
// follows (looking through case-ignorable characters both ways).
bool is_final_sigma(const std::u32string& text, size_t index) {
  size_t j = index;
  while (j > 0 && is_case_ignorable(text[j - 1])) --j;
  if (j == 0 || !is_cased(text[j - 1])) return false;
  size_t k = index + 1;
  while (k < text.size() && is_case_ignorable(text[k])) ++k;
  return k == text.size() || !is_cased(text[k]);
}

void append_lower(std::u32string& out, const std::u32string& text, size_t index) {
  if (text[index] == 0x3A3) {
    out += is_final_sigma(text, index) ? char32_t{0x3C2} : char32_t{0x3C3};
  } else {
    append_mapping(out, text[index], Mapping::Lower);
  }
}

}  // namespace

std::string to_lower(std::string_view text) {
  std::u32string in = to_code_points(text);
  std::u32string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) append_lower(out, in, i);
  return to_utf8(out);
}

std::string to_upper(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : to_code_points(text)) append_mapping(out, c, Mapping::Upper);
  return to_utf8(out);
}

std::string to_title(std::string_view text) {
  std::u32string in = to_code_points(text);
  std::u32string out;
  out.reserve(in.size());
  bool previous_is_cased = false;
  for (size_t i = 0; i < in.size(); ++i) {
    if (previous_is_cased) {
      append_lower(out, in, i);
    } else {
      append_mapping(out, in[i], Mapping::Title);
    }
    previous_is_cased = is_cased(in[i]);
  }
  return to_utf8(out);
}

std::string capitalize(std::string_view text) {
  std::u32string in = to_code_points(text);
  std::u32string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == 0) {
      append_mapping(out, in[i], Mapping::Title);
    } else {
      append_lower(out, in, i);
    }
  }
  return to_utf8(out);
}

std::string swap_case(std::string_view text) {
  std::u32string in = to_code_points(text);
  std::u32string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    uint8_t flags = case_flags(in[i]);
    if (flags & kUpperCase) {
      append_lower(out, in, i);
    } else if (flags & kLowerCase) {
      append_mapping(out, in[i], Mapping::Upper);
    } else {
      out += in[i];
    }
  }
  return to_utf8(out);
}

bool is_lower(std::string_view text) {
  bool cased = false;
  for (char32_t c : to_code_points(text)) {
    uint8_t flags = case_flags(c);
    if (flags & (kUpperCase | kTitleCase)) return false;
    cased = cased || (flags & kLowerCase);
  }
  return cased;
}

bool is_upper(std::string_view text) {
  bool cased = false;
  for (char32_t c : to_code_points(text)) {
    uint8_t flags = case_flags(c);
    if (flags & (kLowerCase | kTitleCase)) return false;
    cased = cased || (flags & kUpperCase);
  }
  return cased;
}

}  // namespace flow2::chat
