#include "chat/predicates.h"

#include <algorithm>
#include <array>

#include "chat/arguments.h"
#include "chat/filters.h"
#include "chat/operators.h"
#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {
namespace {

constexpr std::array<std::string_view, 39> kTests = {
    "boolean", "callable", "defined",  "divisibleby", "eq",       "equalto", "escaped",
    "even",    "false",    "filter",   "float",       "ge",       "gt",      "greaterthan",
    "in",      "integer",  "iterable", "le",          "lessthan", "lower",   "lt",
    "mapping", "ne",       "none",     "number",      "odd",      "sameas",  "sequence",
    "string",  "test",     "true",     "undefined",   "upper",    "==",      "!=",
    "<",       "<=",       ">",        ">="};

// The comparison behind a comparison test's name, if it is one.
std::optional<CompareOp> comparison(std::string_view name) {
  if (name == "eq" || name == "equalto" || name == "==") return CompareOp::Eq;
  if (name == "ne" || name == "!=") return CompareOp::Ne;
  if (name == "lt" || name == "lessthan" || name == "<") return CompareOp::Lt;
  if (name == "le" || name == "<=") return CompareOp::Le;
  if (name == "gt" || name == "greaterthan" || name == ">") return CompareOp::Gt;
  if (name == "ge" || name == ">=") return CompareOp::Ge;
  return std::nullopt;
}

bool is_sequence_kind(const Value& value) {
  if (value.is_list()) {
    ListKind kind = value.as_list().kind;
    return kind == ListKind::List || kind == ListKind::Tuple || kind == ListKind::Range;
  }
  return value.is_string() || value.is_dict() || value.is_undefined();
}

bool same_object(const Value& a, const Value& b) {
  if (a.is_reference() || b.is_reference()) return a.identity() == b.identity();
  return a.type() == b.type() && equals(a, b);
}

}  // namespace

bool is_jinja_test(std::string_view name) {
  return std::find(kTests.begin(), kTests.end(), name) != kTests.end();
}

bool apply_test(Interpreter&, std::string_view name, const Value& input, CallArgs args) {
  if (!is_jinja_test(name)) runtime_fail("unknown test '{}'", name);
  std::string what = fmt::format("test '{}'", name);
  auto one_argument = [&](std::string_view param) {
    Arguments bound(what, std::move(args), {param});
    if (!bound.has(0)) runtime_fail("{} takes exactly one argument", what);
    return bound.get(0);
  };
  if (auto op = comparison(name)) return compare_op(*op, input, one_argument("other"));
  if (name == "in") return contains(one_argument("seq"), input);
  if (name == "divisibleby") {
    return equals(binary_op(BinaryOp::Mod, input, one_argument("num")), Value(0));
  }
  if (name == "sameas") return same_object(input, one_argument("other"));
  if (name == "filter" || name == "test") {
    Arguments(what, std::move(args), {});
    if (!input.is_string()) return false;
    return name == "filter" ? is_jinja_filter(input.as_string()) : is_jinja_test(input.as_string());
  }
  Arguments(what, std::move(args), {});
  if (name == "defined") return !input.is_undefined();
  if (name == "undefined") return input.is_undefined();
  if (name == "none") return input.is_none();
  if (name == "boolean") return input.is_bool();
  if (name == "true") return input.is_bool() && input.as_bool();
  if (name == "false") return input.is_bool() && !input.as_bool();
  if (name == "integer") return input.is_int();
  if (name == "float") return input.is_float();
  if (name == "number") return input.is_number();
  if (name == "string") return input.is_string();
  if (name == "mapping") return input.is_dict();
  if (name == "escaped") return input.is_markup();
  if (name == "callable") {
    // Jinja2's undefined and loop objects define __call__ too.
    return input.is_function() || input.is_undefined() ||
           (input.is_object() && input.as_object().kind == ObjectKind::Loop);
  }
  if (name == "iterable") {
    return input.is_string() || input.is_list() || input.is_dict() || input.is_undefined() ||
           (input.is_object() && input.as_object().kind == ObjectKind::Loop);
  }
  if (name == "sequence") return is_sequence_kind(input);
  if (name == "lower") return is_lower(to_str(input));
  if (name == "upper") return is_upper(to_str(input));
  // odd / even
  Value remainder = binary_op(BinaryOp::Mod, input, Value(2));
  return equals(remainder, Value(name == "odd" ? 1 : 0));
}

}  // namespace flow2::chat
