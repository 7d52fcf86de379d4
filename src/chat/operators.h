// Python's operators on interpreter values: arithmetic (ints are 64-bit and overflow is an
// error, not a bigint), string and list concatenation and repetition, comparisons and `in`.
#pragma once

#include "chat/ast.h"
#include "chat/value.h"

namespace flow2::chat {

// Add, Sub, Mul, Div, FloorDiv, Mod (including str % args), Pow and Concat (~).
Value binary_op(BinaryOp op, const Value& a, const Value& b);
Value unary_op(UnaryOp op, const Value& value);  // Negate or Plus
bool compare_op(CompareOp op, const Value& a, const Value& b);
// `item in container`.
bool contains(const Value& container, const Value& item);

// markupsafe.escape(): HTML-escapes a string (unless it is already Markup) and marks it Markup.
Value html_escape(const Value& value);

}  // namespace flow2::chat
