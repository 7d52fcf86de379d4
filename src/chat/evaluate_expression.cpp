// Expression evaluation.
#include "chat/access.h"
#include "chat/evaluator.h"
#include "chat/filters.h"
#include "chat/operators.h"
#include "chat/predicates.h"
#include "chat/runtime_error.h"

namespace flow2::chat {

Value Interpreter::eval(const Expr& expr, Scope& scope) {
  DepthGuard guard(*this);
  charge(1);
  try {
    Value value = eval_inner(expr, scope);
    // Strings and lists count against the limits by their size.
    if (value.is_string()) {
      check_size(value.as_string().size());
      charge(value.as_string().size() / 256);
    } else if (value.is_list()) {
      check_size(value.as_list().items.size());
      charge(value.as_list().items.size() / 32);
    }
    return value;
  } catch (RuntimeError& error) {
    if (error.line == 0) error.line = expr.line;
    throw;
  }
}

CallArgs Interpreter::eval_args(const ArgumentExprs& args, Scope& scope) {
  CallArgs out;
  out.positional.reserve(args.positional.size());
  for (const auto& arg : args.positional) out.positional.push_back(eval(*arg, scope));
  for (const auto& [key, arg] : args.keywords) out.keywords.emplace_back(key, eval(*arg, scope));
  return out;
}

Value Interpreter::eval_inner(const Expr& expr, Scope& scope) {
  switch (expr.kind) {
    case ExprKind::Literal:
      return static_cast<const LiteralExpr&>(expr).value;
    case ExprKind::Name: {
      const std::string& name = static_cast<const NameExpr&>(expr).name;
      if (const Value* value = scope.lookup(name)) return *value;
      return Value::undefined(fmt::format("'{}' is undefined", name));
    }
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      for (const auto& item : static_cast<const SequenceExpr&>(expr).items) {
        items.push_back(eval(*item, scope));
      }
      return Value::list(std::move(items),
                         expr.kind == ExprKind::List ? ListKind::List : ListKind::Tuple);
    }
    case ExprKind::Dict: {
      Value dict = Value::dict();
      for (const auto& [key_expr, value_expr] : static_cast<const DictExpr&>(expr).items) {
        Value key = eval(*key_expr, scope);
        check_hashable(key);
        dict.as_dict().set(std::move(key), eval(*value_expr, scope));
      }
      return dict;
    }
    case ExprKind::Attribute: {
      const auto& attribute = static_cast<const AttributeExpr&>(expr);
      return get_attribute(eval(*attribute.object, scope), attribute.name);
    }
    case ExprKind::Item: {
      const auto& item = static_cast<const ItemExpr&>(expr);
      Value object = eval(*item.object, scope);
      return get_item(object, eval(*item.index, scope));
    }
    case ExprKind::Slice: {
      const auto& slice = static_cast<const SliceExpr&>(expr);
      Value object = eval(*slice.object, scope);
      auto bound = [&](const ExprPtr& part) { return part ? eval(*part, scope) : Value::none(); };
      Value start = bound(slice.start);
      Value stop = bound(slice.stop);
      Value step = bound(slice.step);
      return get_slice(object, start, stop, step);
    }
    case ExprKind::Call: {
      const auto& call = static_cast<const CallExpr&>(expr);
      Value callee = eval(*call.callee, scope);
      return this->call(callee, eval_args(call.args, scope));
    }
    case ExprKind::Filter: {
      const auto& filter = static_cast<const FilterExpr&>(expr);
      Value input = eval(*filter.operand, scope);
      return apply_filter(*this, filter.name, input, eval_args(filter.args, scope));
    }
    case ExprKind::Test: {
      const auto& test = static_cast<const TestExpr&>(expr);
      Value input = eval(*test.operand, scope);
      bool result = apply_test(*this, test.name, input, eval_args(test.args, scope));
      return Value(result != test.negated);
    }
    case ExprKind::Unary: {
      const auto& unary = static_cast<const UnaryExpr&>(expr);
      Value operand = eval(*unary.operand, scope);
      if (unary.op == UnaryOp::Not) return Value(!truthy(operand));
      return unary_op(unary.op, operand);
    }
    case ExprKind::Binary: {
      const auto& binary = static_cast<const BinaryExpr&>(expr);
      Value left = eval(*binary.lhs, scope);
      if (binary.op == BinaryOp::And) return truthy(left) ? eval(*binary.rhs, scope) : left;
      if (binary.op == BinaryOp::Or) return truthy(left) ? left : eval(*binary.rhs, scope);
      Value right = eval(*binary.rhs, scope);
      return binary_op(binary.op, left, right);
    }
    case ExprKind::Compare: {
      const auto& compare = static_cast<const CompareExpr&>(expr);
      Value left = eval(*compare.first, scope);
      for (const auto& [op, operand] : compare.rest) {
        Value right = eval(*operand, scope);
        if (!compare_op(op, left, right)) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::Conditional: {
      const auto& conditional = static_cast<const ConditionalExpr&>(expr);
      if (truthy(eval(*conditional.condition, scope))) return eval(*conditional.then, scope);
      if (conditional.otherwise) return eval(*conditional.otherwise, scope);
      return Value::undefined(
          "the inline if-expression evaluated to false and no else section was defined");
    }
    case ExprKind::BlockInput:
      return block_input_;
  }
  return Value();
}

}  // namespace flow2::chat
