// Methods of dict, list and tuple values. Like transformers' ImmutableSandboxedEnvironment, the
// methods that modify a container are refused, except list.append, which chat templates use as
// `{% set _ = list.append(x) %}` or `{% do list.append(x) %}`.
#include <algorithm>
#include <array>

#include "chat/access.h"
#include "chat/arguments.h"
#include "chat/evaluator.h"
#include "chat/runtime_error.h"

namespace flow2::chat {
namespace {

template <size_t N>
bool one_of(std::string_view name, const std::array<std::string_view, N>& names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

constexpr std::array<std::string_view, 5> kDictMethods = {"items", "keys", "values", "get", "copy"};
constexpr std::array<std::string_view, 5> kDictMutators = {"clear", "pop", "popitem", "setdefault",
                                                           "update"};
constexpr std::array<std::string_view, 4> kListMethods = {"append", "copy", "count", "index"};
constexpr std::array<std::string_view, 7> kListMutators = {"clear",  "extend",  "insert", "pop",
                                                           "remove", "reverse", "sort"};
constexpr std::array<std::string_view, 2> kTupleMethods = {"count", "index"};

Value dict_view(const DictData& dict, ListKind kind) {
  std::vector<Value> items;
  items.reserve(dict.entries.size());
  for (const auto& [key, value] : dict.entries) {
    if (kind == ListKind::DictKeys) {
      items.push_back(key);
    } else if (kind == ListKind::DictValues) {
      items.push_back(value);
    } else {
      items.push_back(Value::list({key, value}, ListKind::Tuple));
    }
  }
  return Value::list(std::move(items), kind);
}

Value call_dict_method(const Value& self, std::string_view name, CallArgs args) {
  const DictData& dict = self.as_dict();
  std::string what = fmt::format("dict.{}()", name);
  if (name == "items" || name == "keys" || name == "values") {
    Arguments(what, std::move(args), {});
    ListKind kind = name == "items"  ? ListKind::DictItems
                    : name == "keys" ? ListKind::DictKeys
                                     : ListKind::DictValues;
    return dict_view(dict, kind);
  }
  if (name == "get") {
    Arguments bound(what, std::move(args), {"key", "default"});
    if (!bound.has(0)) runtime_fail("dict.get() expected at least 1 argument, got 0");
    check_hashable(bound.get(0));
    const Value* value = dict.find(bound.get(0));
    return value ? *value : bound.get_or(1, Value::none());
  }
  Arguments(what, std::move(args), {});  // copy
  Value copy = Value::dict();
  copy.as_dict().entries = dict.entries;
  return copy;
}

Value call_sequence_method(Interpreter& interpreter, const Value& self, std::string_view name,
                           CallArgs args) {
  ListData& list = self.as_list();
  std::string what = fmt::format("{}.{}()", type_name(self), name);
  if (name == "append") {
    Arguments bound(what, std::move(args), {"object"});
    if (!bound.has(0)) runtime_fail("{} takes exactly one argument (0 given)", what);
    interpreter.track_mutation(self);
    check_value_size(list.items.size() + 1);
    list.items.push_back(bound.get(0));
    return Value::none();
  }
  if (name == "copy") {
    Arguments(what, std::move(args), {});
    return Value::list(list.items, list.kind);
  }
  if (name == "count") {
    Arguments bound(what, std::move(args), {"value"});
    if (!bound.has(0)) runtime_fail("{} takes exactly one argument (0 given)", what);
    count_value_work(list.items.size() / 8);
    return Value(static_cast<int64_t>(
        std::count_if(list.items.begin(), list.items.end(),
                      [&](const Value& item) { return equals(item, bound.get(0)); })));
  }
  // index(value, start=0, stop=len)
  Arguments bound(what, std::move(args), {"value", "start", "stop"});
  if (!bound.has(0)) runtime_fail("{} takes at least 1 argument (0 given)", what);
  auto n = static_cast<int64_t>(list.items.size());
  auto clamp = [n](int64_t index) {
    if (index < 0) index = std::max<int64_t>(index + n, 0);
    return std::min(index, n);
  };
  int64_t start = clamp(bound.get_int(1, 0));
  int64_t stop = clamp(bound.get_int(2, n));
  count_value_work(list.items.size() / 8);
  for (int64_t i = start; i < stop; ++i) {
    if (equals(list.items[static_cast<size_t>(i)], bound.get(0))) return Value(i);
  }
  runtime_fail("{} is not in {}", repr(bound.get(0)), type_name(self));
}

}  // namespace

MethodKind collection_method_kind(const Value& receiver, std::string_view name) {
  if (receiver.is_dict()) {
    if (one_of(name, kDictMethods)) return MethodKind::Supported;
    if (one_of(name, kDictMutators)) return MethodKind::Unsafe;
    return name == "fromkeys" ? MethodKind::Unsupported : MethodKind::None;
  }
  if (!receiver.is_list()) return MethodKind::None;
  switch (receiver.as_list().kind) {
    case ListKind::List:
      if (one_of(name, kListMethods)) return MethodKind::Supported;
      return one_of(name, kListMutators) ? MethodKind::Unsafe : MethodKind::None;
    case ListKind::Tuple:
    case ListKind::Range:
      return one_of(name, kTupleMethods) ? MethodKind::Supported : MethodKind::None;
    case ListKind::DictKeys:
    case ListKind::DictItems:
      return name == "isdisjoint" ? MethodKind::Unsupported : MethodKind::None;
    case ListKind::Iterator:
      return name == "send" || name == "throw" || name == "close" ? MethodKind::Unsupported
                                                                  : MethodKind::None;
    case ListKind::DictValues:
      break;
  }
  return MethodKind::None;
}

Value call_collection_method(Interpreter& interpreter, const Value& self, std::string_view name,
                             CallArgs args) {
  if (self.is_dict()) return call_dict_method(self, name, std::move(args));
  return call_sequence_method(interpreter, self, name, std::move(args));
}

}  // namespace flow2::chat
