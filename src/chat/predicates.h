// Jinja2's tests (x is name(args)).
#pragma once

#include <string_view>

#include "chat/value.h"

namespace flow2::chat {

// Applies test `name`; RuntimeError for unknown tests and bad arguments.
bool apply_test(Interpreter& interpreter, std::string_view name, const Value& input, CallArgs args);
// Whether Jinja2 has a test of this name.
bool is_jinja_test(std::string_view name);

}  // namespace flow2::chat
