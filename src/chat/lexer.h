// Tokenizer for chat templates, with Jinja2's lexical rules as transformers configures them:
// trim_blocks and lstrip_blocks on, `-`/`+` whitespace control, comments and raw blocks dropped
// or passed through, newlines normalized to "\n", one trailing newline removed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flow2::chat {

enum class TokenType : uint8_t {
  Text,           // template data outside tags (text holds it)
  VariableBegin,  // {{
  VariableEnd,    // }}
  BlockBegin,     // {%
  BlockEnd,       // %}
  Name,
  String,    // text holds the decoded value
  Integer,   // integer holds the value
  Float,     // number holds the value
  Operator,  // text holds the spelling: + - * / // % ** ~ ( ) [ ] { } == != < <= > >= = . : | , ;
  End,
};

struct Token {
  TokenType type = TokenType::End;
  int line = 1;
  std::string text;
  int64_t integer = 0;
  double number = 0;
};

// Throws flow2::Error naming `name` and the line for malformed input (an unclosed tag, comment or
// string, a stray character, unbalanced brackets). The source must be valid UTF-8.
std::vector<Token> tokenize(std::string_view source, const std::string& name);

// How an error message refers to a token ("end of print statement", "'foo'").
std::string describe(const Token& token);

}  // namespace flow2::chat
