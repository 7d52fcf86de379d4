// UTF-8 and the bits of Python's str semantics that depend on Unicode: whitespace, line breaks,
// case mapping. Strings inside the interpreter are always valid UTF-8 (the template and the
// context are checked on entry), and Python indexes them by code point.
#pragma once

#include <string>
#include <string_view>

namespace flow2::chat {

bool is_valid_utf8(std::string_view text);

// Decodes the code point starting at `pos` (valid UTF-8) and advances `pos` past it.
char32_t next_code_point(std::string_view text, size_t& pos);
void append_utf8(std::string& out, char32_t code_point);
std::u32string to_code_points(std::string_view text);
std::string to_utf8(std::u32string_view code_points);
size_t code_point_count(std::string_view text);

bool is_space(char32_t c);       // str.isspace(), the \s of Python's re
bool is_line_break(char32_t c);  // a boundary for str.splitlines()

// Python's str.lower(), str.upper(), str.title(), str.capitalize() and str.swapcase(), with
// Unicode's full case mappings (ß upper-cases to SS) and the final-sigma rule, as Python applies
// them (unicode_case_table.cpp).
std::string to_lower(std::string_view text);
std::string to_upper(std::string_view text);
std::string to_title(std::string_view text);
std::string capitalize(std::string_view text);
std::string swap_case(std::string_view text);
// str.islower() / str.isupper(): at least one cased character, and all of them lower / upper.
bool is_lower(std::string_view text);
bool is_upper(std::string_view text);

}  // namespace flow2::chat
