#include "core/utf8.h"

#include <utf8proc.h>

#include <algorithm>

namespace flow2::utf8 {

size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0) return 2;
  if ((lead & 0xf0) == 0xe0) return 3;
  if ((lead & 0xf8) == 0xf0) return 4;
  return 1;
}

char32_t decode(std::string_view text, size_t position, size_t* length) {
  utf8proc_int32_t code_point = 0;
  auto consumed =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + position),
                       static_cast<utf8proc_ssize_t>(text.size() - position), &code_point);
  if (consumed <= 0) {
    *length = 1;
    return 0xfffd;
  }
  *length = static_cast<size_t>(consumed);
  return static_cast<char32_t>(code_point);
}

void append(std::string& out, char32_t code_point) {
  utf8proc_uint8_t buffer[4];
  auto written = utf8proc_encode_char(static_cast<utf8proc_int32_t>(code_point), buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(written));
}

std::vector<std::string_view> characters(std::string_view text) {
  std::vector<std::string_view> result;
  size_t position = 0;
  while (position < text.size()) {
    size_t length = 0;
    decode(text, position, &length);
    result.push_back(text.substr(position, length));
    position += length;
  }
  return result;
}

namespace {

// How many bytes from `position` form a well-formed prefix of a UTF-8 sequence (Unicode
// Table 3-7), and whether that prefix is a complete sequence.
struct Prefix {
  size_t length;
  bool complete;
};

Prefix well_formed_prefix(std::string_view text, size_t position) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[position + i]); };
  unsigned char lead = byte(0);
  if (lead < 0x80) return {1, true};
  size_t needed;
  unsigned char low = 0x80, high = 0xbf;  // range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    needed = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    needed = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    needed = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return {0, false};
  }
  size_t length = 1;
  while (length < needed && position + length < text.size()) {
    unsigned char next = byte(length);
    bool in_range = length == 1 ? next >= low && next <= high : (next & 0xc0) == 0x80;
    if (!in_range) break;
    ++length;
  }
  return {length, length == needed};
}

}  // namespace

std::string prepend(std::string_view prefix, std::string_view text) {
  std::string out;
  out.reserve(prefix.size() + text.size());
  out.append(prefix);
  out.append(text);
  return out;
}

bool is_valid(std::string_view text) {
  for (size_t position = 0; position < text.size();) {
    Prefix prefix = well_formed_prefix(text, position);
    if (!prefix.complete) return false;
    position += prefix.length;
  }
  return true;
}

std::string make_valid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t position = 0; position < bytes.size();) {
    Prefix prefix = well_formed_prefix(bytes, position);
    if (prefix.complete) {
      out.append(bytes.substr(position, prefix.length));
    } else {
      out.append("\xef\xbf\xbd");  // one U+FFFD per maximal ill-formed subpart
    }
    position += std::max<size_t>(prefix.length, 1);
  }
  return out;
}

size_t incomplete_suffix(std::string_view text) {
  for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
    size_t position = text.size() - back;
    if ((static_cast<unsigned char>(text[position]) & 0xc0) == 0x80) continue;
    Prefix prefix = well_formed_prefix(text, position);
    return !prefix.complete && prefix.length == back ? back : 0;
  }
  return 0;
}

bool is_whitespace(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x20:
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200a;
  }
}

bool is_alphanumeric(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) ||
           (c >= 0x7b && c <= 0x7e);
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_numeric(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

namespace {

struct ByteMap {
  std::array<std::string, 256> to_unicode;
  std::array<int, 512> to_byte{};  // mapped code points are all below 0x144
  ByteMap() {
    to_byte.fill(-1);
    // Printable bytes map to themselves; the others to 256, 257, ... in byte order.
    int next = 256;
    for (int byte = 0; byte < 256; ++byte) {
      bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xa1 && byte <= 0xac) ||
                       (byte >= 0xae && byte <= 0xff);
      char32_t code_point = printable ? static_cast<char32_t>(byte) : static_cast<char32_t>(next++);
      append(to_unicode[byte], code_point);
      to_byte[code_point] = byte;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() {
  return byte_map().to_unicode;
}

int unicode_to_byte(char32_t c) {
  return c < 512 ? byte_map().to_byte[c] : -1;
}

}  // namespace flow2::utf8
