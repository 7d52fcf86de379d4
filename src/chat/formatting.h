// Python's two string-formatting languages: printf-style `format % args` (the % operator and
// Jinja2's format filter) and str.format() with its format-spec mini-language.
#pragma once

#include <string>
#include <string_view>

#include "chat/value.h"

namespace flow2::chat {

// `format % args`: args is a tuple of positional values, a dict for %(name)s, or one value.
std::string percent_format(std::string_view format, const Value& args);

// format.format(*args, **kwargs), with replacement fields {}, {0}, {name}, {0.attr}, {0[key]},
// conversions !s !r !a and format specs without nested fields (str_format.cpp).
std::string str_format(std::string_view format, const CallArgs& args);

// Pieces shared by the two.
// `sign` then `body`, padded with `fill` to `width` code points; align '<', '>', '^' or '='
// (padding between the sign and the body).
std::string pad(std::string sign, std::string body, size_t width, char align, std::string fill);
// The digits of |value| in base 10 ('d'), 16 ('x', 'X'), 8 ('o') or 2 ('b'), with the 0x, 0o or
// 0b prefix when `alternate`.
std::string integer_digits(int64_t value, char type, bool alternate);
// %e %f %g %% (and upper case) of a non-negative double.
std::string float_digits(double magnitude, char type, int precision);
// "-" for negative numbers, else "+" or " " as the sign flag asks, or nothing.
std::string sign_of(bool negative, char sign_flag);
// The first `precision` code points of `text` (all of it when precision < 0).
std::string truncate_code_points(const std::string& text, int64_t precision);
// One %-conversion of `arg` without padding; `sign` receives the sign of numbers.
std::string percent_conversion(const Value& arg, char conversion, const std::string& flags,
                               int64_t precision, std::string& sign);

}  // namespace flow2::chat
