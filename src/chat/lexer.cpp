#include "chat/lexer.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include "chat/literals.h"
#include "chat/unicode.h"
#include "flow2/error.h"

namespace flow2::chat {
namespace {

// transformers renders with these two Jinja2 options on.
constexpr bool kTrimBlocks = true;
constexpr bool kLstripBlocks = true;
constexpr size_t npos = std::string::npos;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

int count_newlines(std::string_view text) {
  int count = 0;
  for (char c : text) count += c == '\n';
  return count;
}

bool all_space(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (!is_space(next_code_point(text, pos))) return false;
  }
  return true;
}

// Python's str.rstrip() with no argument.
std::string_view rstrip_space(std::string_view text) {
  size_t keep = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t c = next_code_point(text, pos);
    if (!is_space(c)) keep = pos;
  }
  return text.substr(0, keep);
}

// "\r\n" and "\r" become "\n", and one trailing newline goes (keep_trailing_newline=False).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(std::string_view source, const std::string& name)
      : src_(normalize_newlines(source)), name_(name) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      if (tag == npos) {
        emit_text(std::string_view(src_).substr(pos_), line_);
        advance(src_.size());
        break;
      }
      char kind = src_[tag + 1];
      size_t after = tag + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      size_t raw_content = kind == '%' ? match_raw_begin(tag) : npos;
      std::string_view text = std::string_view(src_).substr(pos_, tag - pos_);
      bool line_starting = pos_ == 0 || src_[pos_ - 1] == '\n';
      emit_text(strip_before_tag(text, sign, kind != '{', line_starting), line_);
      advance(tag);
      int open_line = line_;
      if (raw_content != npos) {
        advance(raw_content);
        lex_raw(open_line);
      } else if (kind == '#') {
        lex_comment(after, open_line);
      } else {
        lex_tag(kind == '%', after, open_line);
      }
    }
    tokens_.push_back(Token{TokenType::End, line_, "", 0, 0});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(int line, const std::string& message) const {
    throw Error(fmt::format("{} line {}: {}", name_, line, message));
  }

  bool starts(size_t pos, std::string_view prefix) const {
    return src_.compare(pos, prefix.size(), prefix) == 0;
  }

  // Moves to `end`, counting the newlines passed.
  void advance(size_t end) {
    line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
    pos_ = end;
  }

  // The byte length of the whitespace code point at `pos`, or 0.
  size_t space_length(size_t pos) const {
    if (pos >= src_.size()) return 0;
    size_t next = pos;
    return is_space(next_code_point(src_, next)) ? next - pos : 0;
  }

  size_t skip_space(size_t pos) const {
    while (size_t length = space_length(pos)) pos += length;
    return pos;
  }

  void emit_text(std::string_view text, int line) {
    if (!text.empty()) tokens_.push_back(Token{TokenType::Text, line, std::string(text), 0, 0});
  }

  // The start of the next "{{", "{%" or "{#" at or after `from`.
  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return npos;
  }

  // Jinja2's whitespace control for the text before a tag: "-" strips all trailing whitespace;
  // otherwise lstrip_blocks strips the spaces and tabs between the start of the line and a block
  // or comment tag, unless the tag says "+".
  static std::string_view strip_before_tag(std::string_view text, char sign, bool lstrip_allowed,
                                           bool line_starting) {
    if (sign == '-') return rstrip_space(text);
    if (sign == '+' || !kLstripBlocks || !lstrip_allowed) return text;
    size_t line_start = text.rfind('\n');
    line_start = line_start == npos ? 0 : line_start + 1;
    if ((line_start > 0 || line_starting) && line_start < text.size() &&
        all_space(text.substr(line_start))) {
      return text.substr(0, line_start);
    }
    return text;
  }

  // The end of a "{% raw %}" tag starting at `tag`, or npos if the tag is something else.
  size_t match_raw_begin(size_t tag) const {
    size_t p = tag + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = skip_space(p);
    if (!starts(p, "raw")) return npos;
    p = skip_space(p + 3);
    if (starts(p, "-%}")) return skip_space(p + 3);
    if (starts(p, "%}")) return p + 2;
    return npos;
  }

  void lex_raw(int open_line) {
    size_t content = pos_;
    if (content >= src_.size()) return;  // Jinja2 accepts a "{% raw %}" that ends the template
    for (size_t q = src_.find("{%", content); q != npos; q = src_.find("{%", q + 1)) {
      size_t p = q + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = skip_space(p);
      if (!starts(p, "endraw")) continue;
      p = skip_space(p + 6);
      size_t end = npos;
      if (starts(p, "+%}")) {
        end = p + 3;
      } else if (starts(p, "-%}")) {
        end = skip_space(p + 3);
      } else if (starts(p, "%}")) {
        end = p + 2;
        if (kTrimBlocks && end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      bool line_starting = src_[content - 1] == '\n';
      emit_text(strip_before_tag(std::string_view(src_).substr(content, q - content), sign, true,
                                 line_starting),
                line_);
      advance(end);
      return;
    }
    fail(open_line, "missing '{% endraw %}' for '{% raw %}'");
  }

  void lex_comment(size_t body, int open_line) {
    if (body >= src_.size()) {  // Jinja2 accepts a "{#" that ends the template
      advance(src_.size());
      return;
    }
    size_t close = src_.find("#}", body);
    if (close == npos) fail(open_line, "missing end of comment tag '#}'");
    size_t end = close + 2;
    if (close > body && src_[close - 1] == '-') {
      end = skip_space(end);
    } else if (close > body && src_[close - 1] == '+') {
      // keeps the newline
    } else if (kTrimBlocks && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    advance(end);
  }

  void push(TokenType type, std::string text = "") {
    tokens_.push_back(Token{type, line_, std::move(text), 0, 0});
  }

  void lex_tag(bool block, size_t start, int open_line) {
    push(block ? TokenType::BlockBegin : TokenType::VariableBegin);
    advance(start);
    std::string balance;  // closing brackets expected, innermost last
    while (true) {
      if (pos_ >= src_.size()) {
        fail(open_line,
             block ? "unclosed '{%' tag: missing '%}'" : "unclosed '{{' tag: missing '}}'");
      }
      // Jinja2 ends a tag only where the brackets in it are balanced.
      if (balance.empty() && lex_tag_end(block)) return;
      if (size_t length = space_length(pos_)) {
        advance(pos_ + length);
        continue;
      }
      char c = src_[pos_];
      if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        size_t end = pos_;
        while (end < src_.size() && is_name_char(src_[end])) ++end;
        push(TokenType::Name, src_.substr(pos_, end - pos_));
        advance(end);
      } else if (c == '\'' || c == '"') {
        lex_string();
      } else {
        lex_operator(balance);
      }
    }
  }

  bool lex_tag_end(bool block) {
    if (block) {
      if (starts(pos_, "+%}")) {
        push(TokenType::BlockEnd);
        advance(pos_ + 3);
      } else if (starts(pos_, "-%}")) {
        push(TokenType::BlockEnd);
        advance(skip_space(pos_ + 3));
      } else if (starts(pos_, "%}")) {
        push(TokenType::BlockEnd);
        size_t end = pos_ + 2;
        if (kTrimBlocks && end < src_.size() && src_[end] == '\n') ++end;
        advance(end);
      } else {
        return false;
      }
      return true;
    }
    if (starts(pos_, "-}}")) {
      push(TokenType::VariableEnd);
      advance(skip_space(pos_ + 3));
    } else if (starts(pos_, "}}")) {
      push(TokenType::VariableEnd);
      advance(pos_ + 2);
    } else {
      return false;
    }
    return true;
  }

  // The end of `(\d+_)*\d+` at `p`, or npos.
  size_t digits_end(size_t p) const {
    if (p >= src_.size() || !is_digit(src_[p])) return npos;
    while (true) {
      while (p < src_.size() && is_digit(src_[p])) ++p;
      if (p + 1 < src_.size() && src_[p] == '_' && is_digit(src_[p + 1])) {
        ++p;
        continue;
      }
      return p;
    }
  }

  static std::string without_underscores(std::string_view text) {
    std::string out;
    for (char c : text) {
      if (c != '_') out += c;
    }
    return out;
  }

  // A float if Jinja2's float rule matches here (not right after a '.'), else npos.
  size_t float_end() const {
    if (pos_ > 0 && src_[pos_ - 1] == '.') return npos;
    size_t integer_end = digits_end(pos_);
    size_t fraction_end = npos;
    if (integer_end < src_.size() && src_[integer_end] == '.')
      fraction_end = digits_end(integer_end + 1);
    size_t mantissa_end = fraction_end != npos ? fraction_end : integer_end;
    if (mantissa_end < src_.size() && (src_[mantissa_end] == 'e' || src_[mantissa_end] == 'E')) {
      size_t q = mantissa_end + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      size_t exponent_end = digits_end(q);
      if (exponent_end != npos) return exponent_end;
    }
    return fraction_end;
  }

  void lex_number() {
    if (size_t end = float_end(); end != npos) {
      std::string text = without_underscores(std::string_view(src_).substr(pos_, end - pos_));
      double value = 0;
      auto result = std::from_chars(text.data(), text.data() + text.size(), value);
      if (result.ec == std::errc::result_out_of_range) {
        bool tiny = text.find("e-") != npos || text.find("E-") != npos;
        value = tiny ? 0.0 : std::numeric_limits<double>::infinity();
      }
      tokens_.push_back(Token{TokenType::Float, line_, text, 0, value});
      advance(end);
      return;
    }
    // Jinja2's integer rule: 0b/0o/0x prefixes, decimals without leading zeros, or zeros.
    int base = 10;
    size_t digits = pos_;
    if (src_[pos_] == '0' && pos_ + 1 < src_.size()) {
      char prefix = static_cast<char>(src_[pos_ + 1] | 0x20);
      base = prefix == 'b' ? 2 : prefix == 'o' ? 8 : prefix == 'x' ? 16 : 10;
      if (base != 10) digits = pos_ + 2;
    }
    auto valid = [&](char c) {
      int value = hex_value(c);
      if (base == 10 && src_[pos_] == '0') return c == '0';
      return value >= 0 && value < base;
    };
    size_t end = digits;
    if (base != 10 || src_[pos_] != '0') {
      while (true) {
        if (end + 1 < src_.size() && src_[end] == '_' && valid(src_[end + 1])) {
          end += 2;
        } else if (end < src_.size() && valid(src_[end])) {
          ++end;
        } else {
          break;
        }
      }
    } else {
      end = pos_ + 1;  // "0(_?0)*"
      while (true) {
        if (end + 1 < src_.size() && src_[end] == '_' && src_[end + 1] == '0') {
          end += 2;
        } else if (end < src_.size() && src_[end] == '0') {
          ++end;
        } else {
          break;
        }
      }
    }
    if (base != 10 && end == digits) {  // "0x" without digits: the integer is just "0"
      base = 10;
      digits = pos_;
      end = pos_ + 1;
    }
    std::string text = without_underscores(std::string_view(src_).substr(digits, end - digits));
    uint64_t value = 0;
    auto result = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (result.ec != std::errc() ||
        value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(line_, fmt::format("integer literal '{}' is too large", src_.substr(pos_, end - pos_)));
    }
    tokens_.push_back(Token{TokenType::Integer, line_, src_.substr(pos_, end - pos_),
                            static_cast<int64_t>(value), 0});
    advance(end);
  }

  void lex_string() {
    char quote = src_[pos_];
    size_t i = pos_ + 1;
    while (true) {
      if (i >= src_.size()) fail(line_, "unterminated string literal");
      if (src_[i] == '\\') {
        if (i + 1 >= src_.size()) fail(line_, "unterminated string literal");
        i += 2;
      } else if (src_[i] == quote) {
        break;
      } else {
        ++i;
      }
    }
    std::string error;
    std::optional<std::string> value =
        decode_string_literal(std::string_view(src_).substr(pos_ + 1, i - pos_ - 1), error);
    if (!value) fail(line_, error);
    push(TokenType::String, std::move(*value));
    advance(i + 1);
  }

  void lex_operator(std::string& balance) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (starts(pos_, op)) {
        push(TokenType::Operator, std::string(op));
        advance(pos_ + 2);
        return;
      }
    }
    char c = src_[pos_];
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      size_t next = pos_;
      char32_t code_point = next_code_point(src_, next);
      fail(line_,
           code_point >= 0x21 && code_point < 0x7F
               ? fmt::format("unexpected character '{}'", c)
               : fmt::format("unexpected character U+{:04X}", static_cast<uint32_t>(code_point)));
    }
    if (c == '(' || c == '[' || c == '{') {
      balance += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) fail(line_, fmt::format("unexpected '{}'", c));
      if (balance.back() != c) {
        fail(line_, fmt::format("unexpected '{}', expected '{}'", c, balance.back()));
      }
      balance.pop_back();
    }
    push(TokenType::Operator, std::string(1, c));
    advance(pos_ + 1);
  }

  std::string src_;
  const std::string& name_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const std::string& name) {
  return Lexer(source, name).run();
}

std::string describe(const Token& token) {
  switch (token.type) {
    case TokenType::Text:
      return "template text";
    case TokenType::VariableBegin:
      return "'{{'";
    case TokenType::VariableEnd:
      return "end of print statement";
    case TokenType::BlockBegin:
      return "'{%'";
    case TokenType::BlockEnd:
      return "end of statement block";
    case TokenType::String:
      return "string literal";
    case TokenType::End:
      return "end of template";
    default:
      return "'" + token.text + "'";
  }
}

}  // namespace flow2::chat
