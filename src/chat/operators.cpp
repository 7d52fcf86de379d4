#include "chat/operators.h"

#include <cmath>
#include <limits>

#include "chat/formatting.h"
#include "chat/runtime_error.h"

namespace flow2::chat {
namespace {

const char* symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "+";
    case BinaryOp::Sub:
      return "-";
    case BinaryOp::Mul:
      return "*";
    case BinaryOp::Div:
      return "/";
    case BinaryOp::FloorDiv:
      return "//";
    case BinaryOp::Mod:
      return "%";
    case BinaryOp::Pow:
      return "**";
    default:
      return "~";
  }
}

[[noreturn]] void fail_undefined(const Value& value) {
  runtime_fail("{}", value.undefined_hint().empty() ? "undefined value used in an operation"
                                                    : value.undefined_hint());
}

[[noreturn]] void fail_operands(BinaryOp op, const Value& a, const Value& b) {
  runtime_fail("unsupported operand type(s) for {}: '{}' and '{}'", symbol(op), type_name(a),
               type_name(b));
}

[[noreturn]] void fail_overflow() {
  runtime_fail("integer overflow (beyond 64-bit integers)");
}

template <typename Operation>
int64_t checked(Operation operation, int64_t x, int64_t y) {
  int64_t result;
  if (operation(x, y, &result)) fail_overflow();
  return result;
}

bool add_overflows(int64_t x, int64_t y, int64_t* r) {
  return __builtin_add_overflow(x, y, r);
}
bool sub_overflows(int64_t x, int64_t y, int64_t* r) {
  return __builtin_sub_overflow(x, y, r);
}
bool mul_overflows(int64_t x, int64_t y, int64_t* r) {
  return __builtin_mul_overflow(x, y, r);
}

Value integer_pow(int64_t base, int64_t exponent) {
  int64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1) result = checked(mul_overflows, result, base);
    exponent >>= 1;
    if (exponent > 0) base = checked(mul_overflows, base, base);
  }
  return Value(result);
}

Value float_pow(double base, double exponent) {
  if (base == 0.0 && exponent < 0) runtime_fail("0.0 cannot be raised to a negative power");
  if (base < 0 && std::isfinite(exponent) && exponent != std::floor(exponent)) {
    runtime_fail("a negative number raised to a fractional power is complex");
  }
  double result = std::pow(base, exponent);
  if (std::isinf(result) && std::isfinite(base) && std::isfinite(exponent)) {
    runtime_fail("numerical result out of range");
  }
  return Value(result);
}

// Python's divmod for floats: the remainder has the sign of the divisor.
std::pair<double, double> float_divmod(double x, double y) {
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  double floor_div;
  if (div != 0.0) {
    floor_div = std::floor(div);
    if (div - floor_div > 0.5) floor_div += 1.0;
  } else {
    floor_div = std::copysign(0.0, x / y);
  }
  return {floor_div, mod};
}

Value arithmetic(BinaryOp op, const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) {
    int64_t x = a.as_integral();
    int64_t y = b.as_integral();
    switch (op) {
      case BinaryOp::Add:
        return Value(checked(add_overflows, x, y));
      case BinaryOp::Sub:
        return Value(checked(sub_overflows, x, y));
      case BinaryOp::Mul:
        return Value(checked(mul_overflows, x, y));
      case BinaryOp::Div:
        if (y == 0) runtime_fail("division by zero");
        return Value(static_cast<double>(x) / static_cast<double>(y));
      case BinaryOp::FloorDiv:
      case BinaryOp::Mod: {
        if (y == 0) runtime_fail("integer division or modulo by zero");
        if (y == -1) {
          if (op == BinaryOp::Mod) return Value(int64_t{0});
          return Value(checked(sub_overflows, 0, x));
        }
        int64_t quotient = x / y;
        int64_t remainder = x % y;
        if (remainder != 0 && ((remainder < 0) != (y < 0))) {
          quotient -= 1;
          remainder += y;
        }
        return Value(op == BinaryOp::Mod ? remainder : quotient);
      }
      case BinaryOp::Pow:
        if (y >= 0) return integer_pow(x, y);
        return float_pow(static_cast<double>(x), static_cast<double>(y));
      default:
        break;
    }
  }
  double x = a.as_number();
  double y = b.as_number();
  switch (op) {
    case BinaryOp::Add:
      return Value(x + y);
    case BinaryOp::Sub:
      return Value(x - y);
    case BinaryOp::Mul:
      return Value(x * y);
    case BinaryOp::Div:
      if (y == 0) runtime_fail("float division by zero");
      return Value(x / y);
    case BinaryOp::FloorDiv:
      if (y == 0) runtime_fail("float floor division by zero");
      return Value(float_divmod(x, y).first);
    case BinaryOp::Mod:
      if (y == 0) runtime_fail("float modulo by zero");
      return Value(float_divmod(x, y).second);
    case BinaryOp::Pow:
      return float_pow(x, y);
    default:
      fail_operands(op, a, b);
  }
}

bool is_sequence(const Value& value) {
  return value.is_list_kind(ListKind::List) || value.is_list_kind(ListKind::Tuple);
}

// Checks the size of `count` copies of something of `size` without overflowing.
void check_repeat_size(size_t size, int64_t count) {
  if (size == 0 || count <= 0) return;
  auto copies = static_cast<uint64_t>(count);
  check_value_size(copies > SIZE_MAX / size ? SIZE_MAX : size * copies);
}

Value repeat(const Value& sequence, int64_t count) {
  count = std::max<int64_t>(count, 0);
  if (sequence.is_string()) {
    const std::string& text = sequence.as_string();
    check_repeat_size(text.size(), count);
    std::string out;
    out.reserve(text.size() * static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) out += text;
    return Value(std::move(out), sequence.is_markup());
  }
  const auto& items = sequence.as_list().items;
  check_repeat_size(items.size(), count);
  std::vector<Value> out;
  out.reserve(items.size() * static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), sequence.as_list().kind);
}

Value add(const Value& a, const Value& b) {
  if (a.is_string() && b.is_string()) {
    bool markup = a.is_markup() || b.is_markup();
    // Markup + str escapes the str, as markupsafe does.
    std::string left = markup && !a.is_markup() ? html_escape(a).as_string() : a.as_string();
    std::string right = markup && !b.is_markup() ? html_escape(b).as_string() : b.as_string();
    check_value_size(left.size() + right.size());
    return Value(left + right, markup);
  }
  if (is_sequence(a) && is_sequence(b) && a.as_list().kind == b.as_list().kind) {
    check_value_size(a.as_list().items.size() + b.as_list().items.size());
    std::vector<Value> items = a.as_list().items;
    items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
    return Value::list(std::move(items), a.as_list().kind);
  }
  if (a.is_string()) runtime_fail("can only concatenate str (not \"{}\") to str", type_name(b));
  if (a.is_list_kind(ListKind::List)) {
    runtime_fail("can only concatenate list (not \"{}\") to list", type_name(b));
  }
  fail_operands(BinaryOp::Add, a, b);
}

}  // namespace

Value html_escape(const Value& value) {
  if (value.is_markup()) return value;
  std::string text = to_str(value);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return Value(std::move(out), true);
}

Value binary_op(BinaryOp op, const Value& a, const Value& b) {
  if (op == BinaryOp::Concat) {
    std::string left = to_str(a);
    std::string right = to_str(b);
    check_value_size(left.size() + right.size());
    return Value(left + right);
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  switch (op) {
    case BinaryOp::Add:
      return add(a, b);
    case BinaryOp::Mul:
      if ((a.is_string() || is_sequence(a)) && b.is_integral()) return repeat(a, b.as_integral());
      if (a.is_integral() && (b.is_string() || is_sequence(b))) return repeat(b, a.as_integral());
      break;
    case BinaryOp::Mod:
      if (a.is_string()) return Value(percent_format(a.as_string(), b));
      break;
    default:
      break;
  }
  fail_operands(op, a, b);
}

Value unary_op(UnaryOp op, const Value& value) {
  if (value.is_undefined()) fail_undefined(value);
  if (value.is_float()) return Value(op == UnaryOp::Negate ? -value.as_float() : value.as_float());
  if (value.is_integral()) {
    int64_t x = value.as_integral();
    if (op == UnaryOp::Plus) return Value(x);
    if (x == std::numeric_limits<int64_t>::min()) fail_overflow();
    return Value(-x);
  }
  runtime_fail("bad operand type for unary {}: '{}'", op == UnaryOp::Negate ? "-" : "+",
               type_name(value));
}

bool compare_op(CompareOp op, const Value& a, const Value& b) {
  switch (op) {
    case CompareOp::Eq:
      return equals(a, b);
    case CompareOp::Ne:
      return !equals(a, b);
    case CompareOp::In:
      return contains(b, a);
    case CompareOp::NotIn:
      return !contains(b, a);
    default:
      break;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number() && (a.is_float() || b.is_float())) {
    double x = a.as_number();
    double y = b.as_number();  // NaN makes every ordering false, as in Python
    switch (op) {
      case CompareOp::Lt:
        return x < y;
      case CompareOp::Le:
        return x <= y;
      case CompareOp::Gt:
        return x > y;
      default:
        return x >= y;
    }
  }
  int order = compare(a, b);
  switch (op) {
    case CompareOp::Lt:
      return order < 0;
    case CompareOp::Le:
      return order <= 0;
    case CompareOp::Gt:
      return order > 0;
    default:
      return order >= 0;
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::Undefined:
      return false;
    case Value::Type::String:
      if (!item.is_string()) {
        runtime_fail("'in <string>' requires string as left operand, not {}", type_name(item));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Type::List:
      count_value_work(container.as_list().items.size() / 8);
      for (const Value& element : container.as_list().items) {
        if (equals(element, item)) return true;
      }
      return false;
    case Value::Type::Dict:
      check_hashable(item);
      return container.as_dict().find(item) != nullptr;
    default:
      runtime_fail("argument of type '{}' is not iterable", type_name(container));
  }
}

}  // namespace flow2::chat
