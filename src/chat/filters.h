// Jinja2's filters (x | name(args)), with transformers' tojson.
#pragma once

#include <string_view>

#include "chat/value.h"

namespace flow2::chat {

// Applies filter `name`; RuntimeError for unknown or unsupported filters and bad arguments.
Value apply_filter(Interpreter& interpreter, std::string_view name, const Value& input,
                   CallArgs args);
// Whether Jinja2 has a filter of this name (implemented here or not).
bool is_jinja_filter(std::string_view name);

// The filters over sequences (filters_sequence.cpp).
Value filter_first(Interpreter&, const Value& input, CallArgs args);
Value filter_last(Interpreter&, const Value& input, CallArgs args);
Value filter_join(Interpreter&, const Value& input, CallArgs args);
Value filter_list(Interpreter&, const Value& input, CallArgs args);
Value filter_map(Interpreter&, const Value& input, CallArgs args);
Value filter_select(Interpreter&, const Value& input, CallArgs args);
Value filter_reject(Interpreter&, const Value& input, CallArgs args);
Value filter_selectattr(Interpreter&, const Value& input, CallArgs args);
Value filter_rejectattr(Interpreter&, const Value& input, CallArgs args);
Value filter_unique(Interpreter&, const Value& input, CallArgs args);
Value filter_sort(Interpreter&, const Value& input, CallArgs args);
Value filter_dictsort(Interpreter&, const Value& input, CallArgs args);
Value filter_reverse(Interpreter&, const Value& input, CallArgs args);
Value filter_sum(Interpreter&, const Value& input, CallArgs args);
Value filter_min(Interpreter&, const Value& input, CallArgs args);
Value filter_max(Interpreter&, const Value& input, CallArgs args);
Value filter_batch(Interpreter&, const Value& input, CallArgs args);

}  // namespace flow2::chat
