#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "chat/runtime_error.h"
#include "chat/unicode.h"

namespace flow2::chat {
namespace {

thread_local uint64_t t_work = 0;
thread_local uint64_t t_budget = UINT64_MAX;
thread_local size_t t_max_bytes = SIZE_MAX;

// Containers hand the values they hold to this queue when destroyed; the outermost destructor
// drains it, so destroying a deeply nested value never recurses more than one level.
void release(std::vector<Value>& values) {
  static thread_local std::vector<Value> queue;
  static thread_local bool draining = false;
  for (Value& value : values) {
    if (value.is_reference()) queue.push_back(std::move(value));
  }
  values.clear();
  if (draining) return;
  draining = true;
  while (!queue.empty()) {
    Value last = std::move(queue.back());
    queue.pop_back();
  }
  draining = false;
}

}  // namespace

ValueLimitsScope::ValueLimitsScope(uint64_t work_budget, size_t max_bytes)
    : saved_work_(t_work), saved_budget_(t_budget), saved_bytes_(t_max_bytes) {
  t_work = 0;
  t_budget = work_budget;
  t_max_bytes = max_bytes;
}

ValueLimitsScope::~ValueLimitsScope() {
  t_work = saved_work_;
  t_budget = saved_budget_;
  t_max_bytes = saved_bytes_;
}

void count_value_work(uint64_t units) {
  t_work += units;
  if (t_work > t_budget) {
    runtime_fail("rendering takes more than its step limit (ChatTemplateLimits::max_steps)");
  }
}

void check_value_depth(int depth) {
  if (depth > kMaxValueDepth) runtime_fail("value nested more than {} levels deep", kMaxValueDepth);
  count_value_work(1);
}

void check_value_size(size_t size) {
  if (size > t_max_bytes) {
    runtime_fail("a value of {} bytes or items exceeds ChatTemplateLimits::max_output_bytes ({})",
                 size, t_max_bytes);
  }
}

Value Value::list(std::vector<Value> items, ListKind kind) {
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->kind = kind;
  return Value(std::move(data));
}

Value Value::dict() {
  return Value(std::make_shared<DictData>());
}

Value Value::object(ObjectKind kind) {
  auto data = std::make_shared<ObjectData>();
  data->kind = kind;
  return Value(std::move(data));
}

bool Value::is_list_kind(ListKind kind) const {
  return is_list() && as_list().kind == kind;
}

double Value::as_number() const {
  if (is_float()) return as_float();
  return static_cast<double>(as_integral());
}

const void* Value::identity() const {
  switch (type()) {
    case Type::List:
      return &as_list();
    case Type::Dict:
      return &as_dict();
    case Type::Object:
      return &as_object();
    case Type::Function:
      return &as_function();
    default:
      return nullptr;
  }
}

ListData::~ListData() {
  release(items);
}

DictData::~DictData() {
  std::vector<Value> values;
  values.reserve(entries.size() * 2);
  for (auto& [key, value] : entries) {
    values.push_back(std::move(key));
    values.push_back(std::move(value));
  }
  entries.clear();
  release(values);
}

ObjectData::~ObjectData() {
  std::vector<Value> values;
  values.reserve(attributes.size());
  for (auto& [name, value] : attributes) values.push_back(std::move(value));
  attributes.clear();
  release(values);
}

const Value* DictData::find(const Value& key) const {
  count_value_work(entries.size() / 8);
  for (const auto& [k, v] : entries) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

const Value* ObjectData::find(std::string_view name) const {
  for (const auto& [n, v] : attributes) {
    if (n == name) return &v;
  }
  return nullptr;
}

void ObjectData::set(std::string_view name, Value value) {
  for (auto& [n, v] : attributes) {
    if (n == name) {
      v = std::move(value);
      return;
    }
  }
  attributes.emplace_back(std::string(name), std::move(value));
}

bool truthy(const Value& value) {
  switch (value.type()) {
    case Value::Type::Undefined:
    case Value::Type::None:
      return false;
    case Value::Type::Bool:
      return value.as_bool();
    case Value::Type::Int:
      return value.as_int() != 0;
    case Value::Type::Float:
      return value.as_float() != 0.0;
    case Value::Type::String:
      return !value.as_string().empty();
    case Value::Type::List:
      // A generator is always true in Python, even when it would yield nothing.
      return value.as_list().kind == ListKind::Iterator || !value.as_list().items.empty();
    case Value::Type::Dict:
      return !value.as_dict().entries.empty();
    case Value::Type::Object:
    case Value::Type::Function:
      return true;
  }
  return false;
}

namespace {

bool sequences_equal(const std::vector<Value>& a, const std::vector<Value>& b, int depth);

bool equals_at(const Value& a, const Value& b, int depth) {
  check_value_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_number() == b.as_number();
    return a.as_integral() == b.as_integral();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::Undefined:
    case Value::Type::None:
      return true;
    case Value::Type::String:
      return a.as_string() == b.as_string();
    case Value::Type::List: {
      const ListData& x = a.as_list();
      const ListData& y = b.as_list();
      if (&x == &y) return true;
      if (x.kind != y.kind) return false;
      if (x.kind != ListKind::List && x.kind != ListKind::Tuple && x.kind != ListKind::Range) {
        return false;  // iterators and dict views compare by identity here
      }
      return sequences_equal(x.items, y.items, depth);
    }
    case Value::Type::Dict: {
      const DictData& x = a.as_dict();
      const DictData& y = b.as_dict();
      if (&x == &y) return true;
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [key, value] : x.entries) {
        const Value* other = y.find(key);
        if (!other || !equals_at(value, *other, depth + 1)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

bool sequences_equal(const std::vector<Value>& a, const std::vector<Value>& b, int depth) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!equals_at(a[i], b[i], depth + 1)) return false;
  }
  return true;
}

int compare_at(const Value& a, const Value& b, int depth) {
  check_value_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.as_number();
      double y = b.as_number();
      return x < y ? -1 : (x > y ? 1 : 0);  // NaN compares as neither, like Python
    }
    int64_t x = a.as_integral();
    int64_t y = b.as_integral();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int order = a.as_string().compare(b.as_string());  // UTF-8 byte order is code point order
    return order < 0 ? -1 : (order > 0 ? 1 : 0);
  }
  bool sequences = a.is_list() && b.is_list() && a.as_list().kind == b.as_list().kind &&
                   (a.as_list().kind == ListKind::List || a.as_list().kind == ListKind::Tuple);
  if (sequences) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals_at(x[i], y[i], depth + 1)) return compare_at(x[i], y[i], depth + 1);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  runtime_fail("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b));
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  return equals_at(a, b, 0);
}

int compare(const Value& a, const Value& b) {
  return compare_at(a, b, 0);
}

namespace {

bool is_hashable_at(const Value& value, int depth) {
  check_value_depth(depth);
  if (value.is_dict()) return false;
  if (!value.is_list()) return true;
  const ListData& list = value.as_list();
  if (list.kind == ListKind::Tuple) {
    return std::all_of(list.items.begin(), list.items.end(),
                       [&](const Value& item) { return is_hashable_at(item, depth + 1); });
  }
  return list.kind == ListKind::Iterator || list.kind == ListKind::Range;
}

}  // namespace

bool is_hashable(const Value& value) {
  return is_hashable_at(value, 0);
}

void check_hashable(const Value& value) {
  if (!is_hashable(value)) runtime_fail("unhashable type: '{}'", type_name(value));
}

int64_t length(const Value& value) {
  switch (value.type()) {
    case Value::Type::Undefined:
      return 0;
    case Value::Type::String:
      return static_cast<int64_t>(code_point_count(value.as_string()));
    case Value::Type::List:
      if (value.as_list().kind != ListKind::Iterator) {
        return static_cast<int64_t>(value.as_list().items.size());
      }
      break;
    case Value::Type::Dict:
      return static_cast<int64_t>(value.as_dict().entries.size());
    case Value::Type::Object:
      if (value.as_object().kind == ObjectKind::Loop) {
        if (const Value* length = value.as_object().find("length")) return length->as_int();
      }
      break;
    default:
      break;
  }
  runtime_fail("object of type '{}' has no len()", type_name(value));
}

std::vector<Value> iterate(const Value& value) {
  count_value_work(1);
  switch (value.type()) {
    case Value::Type::Undefined:
      return {};
    case Value::Type::String: {
      std::vector<Value> items;
      const std::string& text = value.as_string();
      count_value_work(text.size() / 8);
      size_t pos = 0;
      while (pos < text.size()) {
        size_t start = pos;
        next_code_point(text, pos);
        items.emplace_back(text.substr(start, pos - start));
      }
      return items;
    }
    case Value::Type::List:
      count_value_work(value.as_list().items.size() / 8);
      return value.as_list().items;
    case Value::Type::Dict: {
      count_value_work(value.as_dict().entries.size() / 8);
      std::vector<Value> keys;
      keys.reserve(value.as_dict().entries.size());
      for (const auto& entry : value.as_dict().entries) keys.push_back(entry.first);
      return keys;
    }
    default:
      runtime_fail("'{}' object is not iterable", type_name(value));
  }
}

}  // namespace flow2::chat
