// Attribute, subscript and slice access with Jinja2's rules: x.name tries the attribute (a method
// or namespace attribute) and then the item, x[key] the item and then the attribute; whatever is
// missing is undefined. Attributes and items of an undefined value are undefined too.
#pragma once

#include <string>
#include <string_view>

#include "chat/value.h"

namespace flow2::chat {

enum class MethodKind : uint8_t {
  None,         // Python has no such method
  Supported,    // implemented here
  Unsafe,       // refused by transformers' ImmutableSandboxedEnvironment (it mutates)
  Unsupported,  // exists in Python, not implemented here
};

Value get_attribute(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
// x[start:stop:step]; None bounds are defaults. Non-integer bounds make it undefined, as in Jinja2.
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);
// Just the attribute (methods, namespace and loop attributes), as Jinja2's |attr filter.
Value get_attribute_only(const Value& object, const std::string& name);

// Python's slice arithmetic: the indices of x[start:stop:step] for a sequence of `length`.
std::vector<size_t> slice_indices(size_t length, const Value& start, const Value& stop,
                                  const Value& step);

// Methods (methods.cpp and string_methods.cpp).
MethodKind string_method_kind(std::string_view name);
MethodKind collection_method_kind(const Value& receiver, std::string_view name);
Value call_string_method(Interpreter& interpreter, const Value& self, std::string_view name,
                         CallArgs args);
Value call_collection_method(Interpreter& interpreter, const Value& self, std::string_view name,
                             CallArgs args);

}  // namespace flow2::chat
