#include "chat/builtins.h"

#include <chrono>
#include <ctime>

#include "chat/arguments.h"
#include "chat/runtime_error.h"

namespace flow2::chat {
namespace {

using Builtin = Value (*)(Interpreter&, CallArgs);

class BuiltinFunction : public Function {
 public:
  BuiltinFunction(std::string name, Builtin function)
      : name_(std::move(name)), function_(function) {}
  Value call(Interpreter& interpreter, CallArgs args) const override {
    return function_(interpreter, std::move(args));
  }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  Builtin function_;
};

// Jinja2's sandbox refuses ranges longer than this.
constexpr int64_t kMaxRange = 100000;

Value range(Interpreter& interpreter, CallArgs args) {
  if (!args.keywords.empty()) runtime_fail("range() takes no keyword arguments");
  const auto& a = args.positional;
  if (a.empty() || a.size() > 3) runtime_fail("range expected 1 to 3 arguments, got {}", a.size());
  int64_t start = 0;
  int64_t step = 1;
  int64_t stop;
  if (a.size() == 1) {
    stop = require_int(a[0], "the argument of range()");
  } else {
    start = require_int(a[0], "the start of range()");
    stop = require_int(a[1], "the stop of range()");
    if (a.size() == 3) step = require_int(a[2], "the step of range()");
  }
  if (step == 0) runtime_fail("range() arg 3 must not be zero");
  // The count, computed without overflow: ceil((stop - start) / step) when positive.
  __int128 span =
      step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
  __int128 stride = step > 0 ? static_cast<__int128>(step) : -static_cast<__int128>(step);
  __int128 count = span > 0 ? (span + stride - 1) / stride : 0;
  if (count > kMaxRange) {
    runtime_fail("range too big: the sandbox blocks ranges larger than {} items", kMaxRange);
  }
  interpreter.charge(static_cast<uint64_t>(count));
  std::vector<Value> items;
  items.reserve(static_cast<size_t>(count));
  for (__int128 i = 0; i < count; ++i) items.emplace_back(static_cast<int64_t>(start + i * step));
  return Value::list(std::move(items), ListKind::Range);
}

// dict(mapping_or_pairs, **kwargs), the entries namespace() starts with too.
Value make_dict(CallArgs& args, std::string_view what) {
  if (args.positional.size() > 1)
    runtime_fail("{} expected at most 1 argument, got {}", what, args.positional.size());
  Value dict = Value::dict();
  DictData& out = dict.as_dict();
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      out.entries = source.as_dict().entries;
    } else {
      for (const Value& pair : iterate(source)) {
        std::vector<Value> parts = iterate(pair);
        if (parts.size() != 2) runtime_fail("{}: sequence elements must be pairs", what);
        check_hashable(parts[0]);
        out.set(parts[0], parts[1]);
      }
    }
  }
  for (auto& [key, value] : args.keywords) out.set(Value(key), std::move(value));
  return dict;
}

Value dict(Interpreter&, CallArgs args) {
  return make_dict(args, "dict()");
}

Value namespace_(Interpreter&, CallArgs args) {
  Value entries = make_dict(args, "namespace()");
  Value space = Value::object(ObjectKind::Namespace);
  for (auto& [key, value] : entries.as_dict().entries) {
    if (!key.is_string()) runtime_fail("namespace() attribute names must be strings");
    space.as_object().set(key.as_string(), value);
  }
  return space;
}

Value raise_exception(Interpreter&, CallArgs args) {
  Arguments bound("raise_exception()", std::move(args), {"message"});
  runtime_fail("{}", to_str(bound.get(0)));
}

// datetime.now().strftime(format): Python expands %f, %z and %Z itself (a naive datetime has no
// zone, so those two are empty) and hands the rest to the C library's strftime.
Value strftime_now(Interpreter&, CallArgs args) {
  Arguments bound("strftime_now()", std::move(args), {"format"});
  std::optional<std::string> format = bound.get_string(0, false);
  if (!format) runtime_fail("strftime_now() takes a format string");
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm local{};
  localtime_r(&seconds, &local);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::string expanded;
  for (size_t i = 0; i < format->size(); ++i) {
    char c = (*format)[i];
    if (c == '%' && i + 1 < format->size()) {
      char next = (*format)[i + 1];
      if (next == 'f') {
        expanded += fmt::format("{:06d}", micros);
        ++i;
        continue;
      }
      if (next == 'z' || next == 'Z') {
        ++i;
        continue;
      }
      expanded += c;
      expanded += next;
      ++i;
      continue;
    }
    expanded += c;
  }
  if (expanded.empty()) return Value("");
  for (size_t size = 256; size <= (size_t{1} << 20); size *= 4) {
    std::string buffer(size, '\0');
    size_t written = std::strftime(buffer.data(), buffer.size(), expanded.c_str(), &local);
    if (written > 0) return Value(buffer.substr(0, written));
  }
  return Value("");
}

template <const char* kName>
Value unsupported(Interpreter&, CallArgs) {
  runtime_fail("{}() is not supported", kName);
}

constexpr char kCycler[] = "cycler";
constexpr char kJoiner[] = "joiner";
constexpr char kLipsum[] = "lipsum";

}  // namespace

void add_globals(Scope& scope) {
  auto add = [&](const char* name, Builtin function) {
    scope.set(name,
              Value(std::shared_ptr<Function>(std::make_shared<BuiltinFunction>(name, function))));
  };
  add("range", range);
  add("dict", dict);
  add("namespace", namespace_);
  add("raise_exception", raise_exception);
  add("strftime_now", strftime_now);
  add("cycler", unsupported<kCycler>);
  add("joiner", unsupported<kJoiner>);
  add("lipsum", unsupported<kLipsum>);
}

}  // namespace flow2::chat
