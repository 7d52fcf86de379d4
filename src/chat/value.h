// The values of the chat-template interpreter, with Python's semantics (Jinja2 evaluates
// templates as Python): str(), repr(), truthiness, ==, ordering, len() and iteration.
//
// Lists, dicts and namespaces are shared by reference, as in Python. Containers release their
// children iteratively, so that a deeply nested value cannot overflow the stack when it is
// destroyed; the reference cycles a template can make by modifying containers are broken by the
// interpreter at the end of a render (Interpreter::track_mutation).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace flow2::chat {

class Interpreter;
class Value;
struct ListData;
struct DictData;
struct ObjectData;
class Function;

// Python's sequence-like types: list, tuple, the one-shot iterators that Jinja's filters return
// (generators), dict views, and range objects.
enum class ListKind : uint8_t { List, Tuple, Iterator, DictKeys, DictValues, DictItems, Range };
// Attribute bags: jinja2's Namespace and the `loop` variable of a for loop.
enum class ObjectKind : uint8_t { Namespace, Loop };

struct Undefined {
  std::string hint;  // what using it reports, e.g. "'foo' is undefined"
};
struct None {};
struct Str {
  std::string text;
  bool markup = false;  // a markupsafe.Markup (from |safe or |escape)
};

class Value {
 public:
  enum class Type : uint8_t {
    Undefined,
    None,
    Bool,
    Int,
    Float,
    String,
    List,
    Dict,
    Object,
    Function
  };

  Value() : storage_(Undefined{}) {}
  Value(bool value) : storage_(value) {}
  Value(int value) : storage_(int64_t{value}) {}
  Value(int64_t value) : storage_(value) {}
  Value(double value) : storage_(value) {}
  Value(std::string text, bool markup = false) : storage_(Str{std::move(text), markup}) {}
  Value(const char* text) : storage_(Str{text, false}) {}
  Value(std::shared_ptr<ListData> list) : storage_(std::move(list)) {}
  Value(std::shared_ptr<DictData> dict) : storage_(std::move(dict)) {}
  Value(std::shared_ptr<ObjectData> object) : storage_(std::move(object)) {}
  Value(std::shared_ptr<Function> function) : storage_(std::move(function)) {}

  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value none() { return Value(None{}); }
  static Value list(std::vector<Value> items, ListKind kind = ListKind::List);
  static Value dict();
  static Value object(ObjectKind kind);

  Type type() const { return static_cast<Type>(storage_.index()); }
  bool is_undefined() const { return type() == Type::Undefined; }
  bool is_none() const { return type() == Type::None; }
  bool is_bool() const { return type() == Type::Bool; }
  bool is_int() const { return type() == Type::Int; }
  bool is_float() const { return type() == Type::Float; }
  bool is_string() const { return type() == Type::String; }
  bool is_list() const { return type() == Type::List; }
  bool is_dict() const { return type() == Type::Dict; }
  bool is_object() const { return type() == Type::Object; }
  bool is_function() const { return type() == Type::Function; }
  // Python's numbers.Number (bool is an int in Python).
  bool is_number() const { return is_bool() || is_int() || is_float(); }
  // An int or a bool, which Python accepts wherever it wants an int.
  bool is_integral() const { return is_bool() || is_int(); }
  bool is_list_kind(ListKind kind) const;

  bool as_bool() const { return std::get<bool>(storage_); }
  int64_t as_int() const { return std::get<int64_t>(storage_); }  // Int only
  int64_t as_integral() const { return is_bool() ? int64_t{as_bool()} : as_int(); }
  double as_float() const { return std::get<double>(storage_); }
  double as_number() const;  // any number as a double
  const std::string& as_string() const { return std::get<Str>(storage_).text; }
  bool is_markup() const { return is_string() && std::get<Str>(storage_).markup; }
  const std::string& undefined_hint() const { return std::get<Undefined>(storage_).hint; }
  ListData& as_list() const { return *std::get<std::shared_ptr<ListData>>(storage_); }
  DictData& as_dict() const { return *std::get<std::shared_ptr<DictData>>(storage_); }
  ObjectData& as_object() const { return *std::get<std::shared_ptr<ObjectData>>(storage_); }
  const Function& as_function() const { return *std::get<std::shared_ptr<Function>>(storage_); }
  // The container or function this value points to (for identity), or null.
  const void* identity() const;
  // True when the value holds a container (list, dict, object) or function.
  bool is_reference() const { return type() >= Type::List; }

 private:
  explicit Value(Undefined undefined) : storage_(std::move(undefined)) {}
  explicit Value(None none) : storage_(none) {}

  std::variant<Undefined, None, bool, int64_t, double, Str, std::shared_ptr<ListData>,
               std::shared_ptr<DictData>, std::shared_ptr<ObjectData>, std::shared_ptr<Function>>
      storage_;
};

struct ListData {
  std::vector<Value> items;
  ListKind kind = ListKind::List;
  ~ListData();
};

struct DictData {
  std::vector<std::pair<Value, Value>> entries;  // insertion order, as Python dicts
  // The value for `key` (hashable; 1, 1.0 and True are the same key, as in Python), or null.
  const Value* find(const Value& key) const;
  void set(Value key, Value value);
  ~DictData();
};

struct ObjectData {
  ObjectKind kind = ObjectKind::Namespace;
  std::vector<std::pair<std::string, Value>> attributes;
  const Value* find(std::string_view name) const;
  void set(std::string_view name, Value value);
  ~ObjectData();
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;
};

// Anything callable from a template: macros, bound methods, globals.
class Function {
 public:
  virtual ~Function() = default;
  virtual Value call(Interpreter& interpreter, CallArgs args) const = 0;
  virtual std::string name() const = 0;
};

// Limits on the recursive operations on values (repr, ==, ordering, hashing, JSON, cycle
// checks), which shared references can make exponential: the interpreter installs them for the
// duration of a render. Exceeding the work budget or the string size throws RuntimeError.
class ValueLimitsScope {
 public:
  ValueLimitsScope(uint64_t work_budget, size_t max_bytes);
  ~ValueLimitsScope();
  ValueLimitsScope(const ValueLimitsScope&) = delete;
  ValueLimitsScope& operator=(const ValueLimitsScope&) = delete;

 private:
  uint64_t saved_work_;
  uint64_t saved_budget_;
  size_t saved_bytes_;
};
// Counts `units` of work against the budget.
void count_value_work(uint64_t units);
// Nesting beyond kMaxValueDepth is refused by the recursive operations (repr, ==, ordering, JSON)
// instead of risking the stack; chat messages nest a handful of levels. Counts one unit of work.
inline constexpr int kMaxValueDepth = 400;
void check_value_depth(int depth);
// Throws RuntimeError if a string or list of `size` bytes or items is over the size limit.
void check_value_size(size_t size);

// Python's type(x).__name__, for messages.
std::string type_name(const Value& value);
bool truthy(const Value& value);
// str(x): what {{ x }} prints. Undefined prints as "", None as "None", True as "True".
std::string to_str(const Value& value);
// repr(x), as Python prints list elements and dict keys.
std::string repr(const Value& value);
std::string repr_string(std::string_view text);
// float.__repr__: the shortest string that round-trips ("1.0", "1e-05", "1e+16").
std::string float_repr(double value);
bool equals(const Value& a, const Value& b);
// Python's ordering: -1, 0 or 1; RuntimeError for types Python cannot order.
int compare(const Value& a, const Value& b);
// Whether the value can be a dict key; check_hashable throws RuntimeError when it cannot.
bool is_hashable(const Value& value);
void check_hashable(const Value& value);
// len(x); RuntimeError for values without a length. An undefined value has length 0.
int64_t length(const Value& value);
// The items a for loop visits: list elements, string characters, dict keys; none for undefined.
std::vector<Value> iterate(const Value& value);
}  // namespace flow2::chat
