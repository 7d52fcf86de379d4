// Binding of a call's positional and keyword arguments to named parameters, as Python binds
// them, for the filters, tests, methods and globals implemented in C++.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/value.h"

namespace flow2::chat {

class Arguments {
 public:
  // `what` names the callee in messages ("filter 'join'"). Throws RuntimeError for too many
  // positional arguments, unknown keywords and arguments given twice.
  Arguments(std::string what, CallArgs args, std::initializer_list<std::string_view> params);

  bool has(size_t index) const { return values_[index].has_value(); }
  const Value& get(size_t index) const;  // the argument, or undefined if it was not passed
  Value get_or(size_t index, Value fallback) const;
  int64_t get_int(size_t index, int64_t fallback) const;  // an int (or bool) or RuntimeError
  // A str argument, or RuntimeError; None counts as not passed when `none_is_default`.
  std::optional<std::string> get_string(size_t index, bool none_is_default = true) const;
  bool get_flag(size_t index, bool fallback) const;  // Python truthiness
  const std::string& what() const { return what_; }

 private:
  std::string what_;
  std::vector<std::string_view> params_;
  std::vector<std::optional<Value>> values_;
};

// Requires an int (or bool) for `what`.
int64_t require_int(const Value& value, std::string_view what);

}  // namespace flow2::chat
