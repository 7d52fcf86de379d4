// Errors: every failure a user can cause is reported as flow2::Error with a message that names
// the file, tensor, key or line at fault. Programming errors may still assert.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace flow2 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Throws flow2::Error unless `condition` holds.
template <typename... Args>
void check(bool condition, fmt::format_string<Args...> format, Args&&... args) {
  if (!condition) throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace flow2
