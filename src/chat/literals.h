// String literals of chat templates: the text between the quotes, decoded as Jinja2 does
// (Python's unicode-escape: \n \t \xhh \uhhhh \Uhhhhhhhh and octal; unknown escapes stay).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace flow2::chat {

// The decoded value, or nullopt with `error` set for a malformed escape.
std::optional<std::string> decode_string_literal(std::string_view raw, std::string& error);

}  // namespace flow2::chat
