// The error type of the chat-template interpreter while rendering. Filters, methods and operators
// throw it without a line; the interpreter fills in the line of the innermost node it was
// evaluating and reports it as flow2::Error.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace flow2::chat {

struct RuntimeError : std::runtime_error {
  explicit RuntimeError(const std::string& message) : std::runtime_error(message) {}
  int line = 0;  // 0 until the interpreter knows it
};

template <typename... Args>
[[noreturn]] void runtime_fail(fmt::format_string<Args...> format, Args&&... args) {
  throw RuntimeError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace flow2::chat
