// Python's unicode-escape decoding, which Jinja2 applies to the body of string literals.
#include "chat/literals.h"

#include <fmt/format.h>

#include <cstdint>

#include "chat/unicode.h"

namespace flow2::chat {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// \xhh, \uhhhh or \Uhhhhhhhh starting at raw[i] (after the letter); advances i.
std::optional<char32_t> hex_escape(std::string_view raw, size_t& i, char letter,
                                   std::string& error) {
  size_t count = letter == 'x' ? 2 : letter == 'u' ? 4 : 8;
  char32_t code_point = 0;
  for (size_t k = 0; k < count; ++k) {
    int digit = i + k < raw.size() ? hex_value(raw[i + k]) : -1;
    if (digit < 0) {
      error = fmt::format("truncated \\{} escape in a string literal", letter);
      return std::nullopt;
    }
    code_point = code_point * 16 + static_cast<char32_t>(digit);
  }
  if (code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    error = fmt::format("invalid code point U+{:04X} in a string literal",
                        static_cast<uint32_t>(code_point));
    return std::nullopt;
  }
  i += count;
  return code_point;
}

}  // namespace

std::optional<std::string> decode_string_literal(std::string_view raw, std::string& error) {
  std::string out;
  size_t i = 0;
  while (i < raw.size()) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out += raw[i++];
      continue;
    }
    char e = raw[i + 1];
    i += 2;
    switch (e) {
      case '\n':  // a line continuation
        break;
      case '\\':
      case '\'':
      case '"':
        out += e;
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        std::optional<char32_t> code_point = hex_escape(raw, i, e, error);
        if (!code_point) return std::nullopt;
        append_utf8(out, *code_point);
        break;
      }
      case 'N':
        error = "\\N{...} escapes are not supported";
        return std::nullopt;
      default:
        if (e >= '0' && e <= '7') {
          char32_t code_point = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i < raw.size() && raw[i] >= '0' && raw[i] <= '7'; ++k) {
            code_point = code_point * 8 + static_cast<char32_t>(raw[i++] - '0');
          }
          append_utf8(out, code_point);
        } else if (static_cast<unsigned char>(e) >= 0x80) {
          // Jinja2 escapes non-ASCII characters before decoding, so "\é" reads "\xe9".
          size_t start = i - 1;
          char32_t c = next_code_point(raw, start);
          i = start;
          out += '\\';
          out += c < 0x100     ? fmt::format("x{:02x}", static_cast<uint32_t>(c))
                 : c < 0x10000 ? fmt::format("u{:04x}", static_cast<uint32_t>(c))
                               : fmt::format("U{:08x}", static_cast<uint32_t>(c));
        } else {
          out += '\\';  // unknown escapes stay as written
          out += e;
        }
    }
  }
  return out;
}

}  // namespace flow2::chat
