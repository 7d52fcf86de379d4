// The filters over sequences. Like Jinja2's, map, select, reject, selectattr, rejectattr,
// unique, items and reverse return one-shot iterators (printing one is an error; |list makes a
// list), and sort and dictsort return lists.
#include <algorithm>

#include "chat/access.h"
#include "chat/arguments.h"
#include "chat/evaluator.h"
#include "chat/filters.h"
#include "chat/operators.h"
#include "chat/predicates.h"
#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {
namespace {

std::string filter_name(std::string_view name) {
  return fmt::format("filter '{}'", name);
}

// Jinja2's attribute getter: "a.b.0" looks up each dotted part as an item (then an attribute);
// digit-only parts are list indices.
Value get_path(const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return get_item(item, attribute);
  const std::string& path = attribute.as_string();
  Value value = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits =
        !part.empty() && part.size() < 10 &&
        std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    value = get_item(value, digits ? Value(static_cast<int64_t>(std::stol(part))) : Value(part));
    if (dot == std::string::npos) return value;
    start = dot + 1;
  }
}

Value ignore_case(const Value& value) {
  return value.is_string() ? Value(to_lower(value.as_string())) : value;
}

// The sort key of Jinja2's sort, unique, min and max.
Value sort_key(const Value& item, const Value& attribute, bool case_sensitive) {
  Value key = attribute.is_undefined() || attribute.is_none() ? item : get_path(item, attribute);
  return case_sensitive ? key : ignore_case(key);
}

Value iterator(std::vector<Value> items) {
  return Value::list(std::move(items), ListKind::Iterator);
}

// select, reject, selectattr and rejectattr: the test is args[0] (after the attribute for the
// *attr variants), its arguments follow; without a test, the item's truthiness decides.
Value select_or_reject(Interpreter& interpreter, const Value& input, CallArgs args,
                       bool by_attribute, bool keep, std::string_view name) {
  if (!truthy(input)) return iterator({});  // Jinja2 skips a false input (none, undefined, [])
  Value attribute;
  size_t offset = 0;
  if (by_attribute) {
    if (args.positional.empty())
      runtime_fail("{}: missing parameter for attribute name", filter_name(name));
    attribute = args.positional[0];
    offset = 1;
  }
  std::string test;
  std::vector<Value> test_args;
  if (args.positional.size() > offset) {
    if (!args.positional[offset].is_string())
      runtime_fail("{}: the test name must be a string", filter_name(name));
    test = args.positional[offset].as_string();
    test_args.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(offset) + 1,
                     args.positional.end());
  } else if (!args.keywords.empty()) {
    runtime_fail("{} got keyword arguments without a test", filter_name(name));
  }
  std::vector<Value> kept;
  for (const Value& item : iterate(input)) {
    Value subject = by_attribute ? get_path(item, attribute) : item;
    bool passed;
    if (test.empty()) {
      passed = truthy(subject);
    } else {
      interpreter.charge(1);
      passed = apply_test(interpreter, test, subject, CallArgs{test_args, args.keywords});
    }
    if (passed == keep) kept.push_back(item);
  }
  return iterator(std::move(kept));
}

Value extreme(const Value& input, CallArgs args, std::string_view name, bool maximum) {
  Arguments bound(filter_name(name), std::move(args), {"case_sensitive", "attribute"});
  std::vector<Value> items = iterate(input);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  bool case_sensitive = bound.get_flag(0, false);
  size_t best = 0;
  Value best_key = sort_key(items[0], bound.get(1), case_sensitive);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = sort_key(items[i], bound.get(1), case_sensitive);
    int order = compare(key, best_key);
    if (maximum ? order > 0 : order < 0) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}

}  // namespace

Value filter_first(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("first"), std::move(args), {});
  std::vector<Value> items = iterate(input);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value filter_last(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("last"), std::move(args), {});
  if (input.is_list_kind(ListKind::Iterator) || input.is_object()) {
    runtime_fail("'{}' object is not reversible", type_name(input));
  }
  std::vector<Value> items = iterate(input);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value filter_join(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("join"), std::move(args), {"d", "attribute"});
  std::string separator = to_str(bound.get_or(0, Value("")));
  std::string out;
  bool first = true;
  for (const Value& item : iterate(input)) {
    if (!first) out += separator;
    first = false;
    out += to_str(bound.has(1) && !bound.get(1).is_none() ? get_path(item, bound.get(1)) : item);
    check_value_size(out.size());
  }
  return Value(std::move(out));
}

Value filter_list(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("list"), std::move(args), {});
  return Value::list(iterate(input));
}

Value filter_map(Interpreter& interpreter, const Value& input, CallArgs args) {
  if (!truthy(input)) return iterator({});  // as select: a false input maps to nothing
  std::vector<Value> items = iterate(input);
  std::vector<Value> mapped;
  mapped.reserve(items.size());
  if (args.positional.empty()) {
    Arguments bound(filter_name("map"), std::move(args), {"attribute", "default"});
    if (!bound.has(0)) runtime_fail("filter 'map' requires a filter name or attribute=");
    for (const Value& item : items) {
      Value value = get_path(item, bound.get(0));
      if (value.is_undefined() && bound.has(1) && !bound.get(1).is_none()) value = bound.get(1);
      mapped.push_back(std::move(value));
    }
    return iterator(std::move(mapped));
  }
  if (!args.positional[0].is_string())
    runtime_fail("filter 'map': the filter name must be a string");
  std::string name = args.positional[0].as_string();
  CallArgs rest{std::vector<Value>(args.positional.begin() + 1, args.positional.end()),
                args.keywords};
  for (const Value& item : items) {
    interpreter.charge(1);
    mapped.push_back(apply_filter(interpreter, name, item, rest));
  }
  return iterator(std::move(mapped));
}

Value filter_select(Interpreter& interpreter, const Value& input, CallArgs args) {
  return select_or_reject(interpreter, input, std::move(args), false, true, "select");
}
Value filter_reject(Interpreter& interpreter, const Value& input, CallArgs args) {
  return select_or_reject(interpreter, input, std::move(args), false, false, "reject");
}
Value filter_selectattr(Interpreter& interpreter, const Value& input, CallArgs args) {
  return select_or_reject(interpreter, input, std::move(args), true, true, "selectattr");
}
Value filter_rejectattr(Interpreter& interpreter, const Value& input, CallArgs args) {
  return select_or_reject(interpreter, input, std::move(args), true, false, "rejectattr");
}

Value filter_unique(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("unique"), std::move(args), {"case_sensitive", "attribute"});
  std::vector<Value> seen;
  std::vector<Value> kept;
  for (const Value& item : iterate(input)) {
    Value key = sort_key(item, bound.get(1), bound.get_flag(0, false));
    check_hashable(key);
    count_value_work(seen.size() / 8);
    if (std::none_of(seen.begin(), seen.end(),
                     [&](const Value& other) { return equals(other, key); })) {
      seen.push_back(std::move(key));
      kept.push_back(item);
    }
  }
  return iterator(std::move(kept));
}

Value filter_sort(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("sort"), std::move(args), {"reverse", "case_sensitive", "attribute"});
  bool reverse = bound.get_int(0, 0) != 0;  // sorted() wants an int or bool here
  bool case_sensitive = bound.get_flag(1, false);
  std::vector<Value> attributes;  // "a,b" sorts by a, then b
  if (bound.get(2).is_string()) {
    const std::string& text = bound.get(2).as_string();
    size_t start = 0;
    while (true) {
      size_t comma = text.find(',', start);
      attributes.emplace_back(
          text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else if (bound.has(2) && !bound.get(2).is_none()) {
    attributes.push_back(bound.get(2));
  }
  std::vector<Value> items = iterate(input);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) {
    // With attributes the key is a list of them, as in Jinja2, so that equal (even undefined)
    // attributes compare equal instead of failing.
    Value key;
    if (attributes.empty()) {
      key = sort_key(items[i], Value(), case_sensitive);
    } else {
      std::vector<Value> parts;
      for (const Value& attribute : attributes) {
        parts.push_back(sort_key(items[i], attribute, case_sensitive));
      }
      key = Value::list(std::move(parts));
    }
    keyed.emplace_back(std::move(key), i);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
    return reverse ? compare(b.first, a.first) < 0 : compare(a.first, b.first) < 0;
  });
  std::vector<Value> sorted;
  for (const auto& [key, index] : keyed) sorted.push_back(items[index]);
  return Value::list(std::move(sorted));
}

Value filter_dictsort(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("dictsort"), std::move(args), {"case_sensitive", "by", "reverse"});
  std::string by = bound.get_string(1).value_or("key");
  if (by != "key" && by != "value")
    runtime_fail("You can only sort by either \"key\" or \"value\"");
  if (!input.is_dict())
    runtime_fail("filter 'dictsort' expects a mapping, not {}", type_name(input));
  bool case_sensitive = bound.get_flag(0, false);
  bool reverse = bound.get_int(2, 0) != 0;
  std::vector<std::pair<Value, Value>> entries = input.as_dict().entries;
  auto key = [&](const std::pair<Value, Value>& entry) {
    const Value& part = by == "key" ? entry.first : entry.second;
    return case_sensitive ? part : ignore_case(part);
  };
  std::stable_sort(entries.begin(), entries.end(), [&](const auto& a, const auto& b) {
    return reverse ? compare(key(b), key(a)) < 0 : compare(key(a), key(b)) < 0;
  });
  std::vector<Value> pairs;
  for (auto& [k, v] : entries) pairs.push_back(Value::list({k, v}, ListKind::Tuple));
  return Value::list(std::move(pairs));
}

Value filter_reverse(Interpreter&, const Value& input, CallArgs args) {
  Arguments(filter_name("reverse"), std::move(args), {});
  if (input.is_string()) {
    std::u32string text = to_code_points(input.as_string());
    std::reverse(text.begin(), text.end());
    return Value(to_utf8(text));
  }
  if (input.is_object()) runtime_fail("argument must be iterable");
  std::vector<Value> items = iterate(input);
  std::reverse(items.begin(), items.end());
  // reversed() of a sequence is an iterator; a generator is reversed into a list instead.
  return Value::list(std::move(items),
                     input.is_list_kind(ListKind::Iterator) ? ListKind::List : ListKind::Iterator);
}

Value filter_sum(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("sum"), std::move(args), {"attribute", "start"});
  Value total = bound.get_or(1, Value(0));
  if (total.is_string()) runtime_fail("sum() can't sum strings [use ''.join(seq) instead]");
  for (const Value& item : iterate(input)) {
    total =
        binary_op(BinaryOp::Add, total,
                  bound.has(0) && !bound.get(0).is_none() ? get_path(item, bound.get(0)) : item);
  }
  return total;
}

Value filter_min(Interpreter&, const Value& input, CallArgs args) {
  return extreme(input, std::move(args), "min", false);
}

Value filter_max(Interpreter&, const Value& input, CallArgs args) {
  return extreme(input, std::move(args), "max", true);
}

Value filter_batch(Interpreter&, const Value& input, CallArgs args) {
  Arguments bound(filter_name("batch"), std::move(args), {"linecount", "fill_with"});
  int64_t size = bound.get_int(0, 0);
  if (size < 1) runtime_fail("filter 'batch' needs a positive line count");
  std::vector<Value> batches;
  std::vector<Value> current;
  for (const Value& item : iterate(input)) {
    if (static_cast<int64_t>(current.size()) == size) {
      batches.push_back(Value::list(std::move(current)));
      current.clear();
    }
    current.push_back(item);
  }
  if (!current.empty()) {
    if (bound.has(1) && !bound.get(1).is_none()) {
      check_value_size(static_cast<size_t>(size));
      while (static_cast<int64_t>(current.size()) < size) current.push_back(bound.get(1));
    }
    batches.push_back(Value::list(std::move(current)));
  }
  return iterator(std::move(batches));
}

}  // namespace flow2::chat
