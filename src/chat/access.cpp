#include "chat/access.h"

#include <fmt/format.h>

#include <limits>

#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {
namespace {

// receiver.name, bound: calling it calls the method.
class BoundMethod : public Function {
 public:
  BoundMethod(Value receiver, std::string name)
      : receiver_(std::move(receiver)), name_(std::move(name)) {}
  Value call(Interpreter& interpreter, CallArgs args) const override {
    if (receiver_.is_string())
      return call_string_method(interpreter, receiver_, name_, std::move(args));
    return call_collection_method(interpreter, receiver_, name_, std::move(args));
  }
  std::string name() const override { return type_name(receiver_) + "." + name_; }

 private:
  Value receiver_;
  std::string name_;
};

// Jinja2's wording for a missing attribute or item: "'dict object' has no attribute 'x'".
Value missing(const Value& object, const Value& key) {
  std::string kind = object.is_undefined() ? "undefined" : type_name(object) + " object";
  if (key.is_string()) {
    return Value::undefined(fmt::format("'{}' has no attribute '{}'", kind, key.as_string()));
  }
  return Value::undefined(fmt::format("'{}' has no element {}", kind, repr(key)));
}

Value method_or_missing(const Value& object, const std::string& name, MethodKind kind) {
  switch (kind) {
    case MethodKind::Supported:
      return Value(std::shared_ptr<Function>(std::make_shared<BoundMethod>(object, name)));
    case MethodKind::Unsafe:
      return Value::undefined(fmt::format(
          "access to attribute '{}' of '{}' object is unsafe (chat templates cannot modify it)",
          name, type_name(object)));
    case MethodKind::Unsupported:
      return Value::undefined(fmt::format("{}.{}() is not supported", type_name(object), name));
    case MethodKind::None:
      break;
  }
  return missing(object, Value(name));
}

MethodKind method_kind(const Value& object, std::string_view name) {
  if (object.is_string()) return string_method_kind(name);
  if (object.is_list() || object.is_dict()) return collection_method_kind(object, name);
  return MethodKind::None;
}

// Python's index of a sequence: negative counts from the end; out of range is -1.
int64_t sequence_index(const Value& key, size_t length) {
  int64_t index = key.as_integral();
  auto n = static_cast<int64_t>(length);
  if (index < 0) index += n;
  return index >= 0 && index < n ? index : -1;
}

}  // namespace

Value get_attribute_only(const Value& object, const std::string& name) {
  if (object.is_undefined()) return object;
  if (object.is_object()) {
    if (const Value* value = object.as_object().find(name)) return *value;
    return missing(object, Value(name));
  }
  return method_or_missing(object, name, method_kind(object, name));
}

Value get_attribute(const Value& object, const std::string& name) {
  if (object.is_dict()) {
    MethodKind kind = collection_method_kind(object, name);
    if (kind != MethodKind::None) return method_or_missing(object, name, kind);
    if (const Value* value = object.as_dict().find(Value(name))) return *value;
    return missing(object, Value(name));
  }
  return get_attribute_only(object, name);
}

Value get_item(const Value& object, const Value& key) {
  switch (object.type()) {
    case Value::Type::Undefined:
      return object;
    case Value::Type::String:
      if (key.is_integral()) {
        std::u32string text = to_code_points(object.as_string());
        int64_t index = sequence_index(key, text.size());
        if (index < 0) return missing(object, key);
        return Value(to_utf8(text.substr(static_cast<size_t>(index), 1)));
      }
      break;
    case Value::Type::List: {
      const ListData& list = object.as_list();
      bool subscriptable = list.kind == ListKind::List || list.kind == ListKind::Tuple ||
                           list.kind == ListKind::Range;
      if (subscriptable && key.is_integral()) {
        int64_t index = sequence_index(key, list.items.size());
        if (index < 0) return missing(object, key);
        return list.items[static_cast<size_t>(index)];
      }
      break;
    }
    case Value::Type::Dict: {
      if (is_hashable(key)) {
        if (const Value* value = object.as_dict().find(key)) return *value;
      }
      if (key.is_string()) {
        MethodKind kind = collection_method_kind(object, key.as_string());
        if (kind != MethodKind::None) return method_or_missing(object, key.as_string(), kind);
      }
      return missing(object, key);
    }
    default:
      break;
  }
  if (key.is_string()) return get_attribute_only(object, key.as_string());
  return missing(object, key);
}

std::vector<size_t> slice_indices(size_t length, const Value& start_value, const Value& stop_value,
                                  const Value& step_value) {
  int64_t step = step_value.is_none() ? 1 : step_value.as_integral();
  if (step == 0) runtime_fail("slice step cannot be zero");
  auto n = static_cast<int64_t>(length);
  auto adjust = [&](const Value& bound, int64_t fallback) {
    if (bound.is_none()) return fallback;
    int64_t index = bound.as_integral();
    if (index < 0) {
      index = index < -n ? (step < 0 ? -1 : 0) : index + n;
    } else if (index >= n) {
      index = step < 0 ? n - 1 : n;
    }
    return index;
  };
  int64_t start = adjust(start_value, step < 0 ? n - 1 : 0);
  int64_t stop = adjust(stop_value, step < 0 ? -1 : n);
  std::vector<size_t> indices;
  if (step > 0) {
    for (int64_t i = start; i < stop; i += step) {
      indices.push_back(static_cast<size_t>(i));
      if (stop - i <= step) break;
    }
  } else {
    for (int64_t i = start; i > stop; i += step) {
      indices.push_back(static_cast<size_t>(i));
      if (step == std::numeric_limits<int64_t>::min() || i - stop <= -step) break;
    }
  }
  return indices;
}

Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  if (object.is_undefined()) return object;
  // Jinja2 slices with Python's own [] (not its getitem), so bad slices raise.
  for (const Value* bound : {&start, &stop, &step}) {
    if (!bound->is_none() && !bound->is_integral()) {
      runtime_fail("slice indices must be integers or None, not {}", type_name(*bound));
    }
  }
  if (object.is_string()) {
    std::u32string text = to_code_points(object.as_string());
    std::u32string out;
    for (size_t i : slice_indices(text.size(), start, stop, step)) out += text[i];
    return Value(to_utf8(out));
  }
  if (object.is_list()) {
    const ListData& list = object.as_list();
    if (list.kind == ListKind::List || list.kind == ListKind::Tuple ||
        list.kind == ListKind::Range) {
      std::vector<Value> items;
      for (size_t i : slice_indices(list.items.size(), start, stop, step))
        items.push_back(list.items[i]);
      return Value::list(std::move(items), list.kind);
    }
  }
  runtime_fail("'{}' object is not subscriptable with a slice", type_name(object));
}

}  // namespace flow2::chat
