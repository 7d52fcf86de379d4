// Expressions, with Jinja2's precedence (lowest first): inline if, or, and, not, comparisons and
// in, + -, ~, * / // %, **, unary - +, then postfix access, calls, filters and tests.
#include <fmt/format.h>

#include <algorithm>

#include "chat/parser.h"

namespace flow2::chat {

// The parse functions recurse twice per level of parentheses (expression and unary), so their
// limit is twice the tree's.
Parser::DepthGuard::DepthGuard(Parser& parser, int line) : parser(parser) {
  if (++parser.depth_ > 2 * kMaxExpressionDepth) {
    parser.fail(line,
                fmt::format("expression nested more than {} levels deep", kMaxExpressionDepth));
  }
}

void Parser::seal(Expr& node, std::initializer_list<const Expr*> children) {
  int depth = 0;
  for (const Expr* child : children) {
    if (child) depth = std::max(depth, child->depth);
  }
  node.depth = std::max(node.depth, depth + 1);
  if (node.depth > kMaxExpressionDepth) {
    fail(node.line, fmt::format("expression nested more than {} levels deep", kMaxExpressionDepth));
  }
}

int Parser::args_depth(const ArgumentExprs& args) const {
  int depth = 0;
  for (const auto& arg : args.positional) depth = std::max(depth, arg->depth);
  for (const auto& [key, arg] : args.keywords) depth = std::max(depth, arg->depth);
  return depth;
}

ExprPtr Parser::binary(int line, BinaryOp op, ExprPtr lhs, ExprPtr rhs) {
  auto node = std::make_unique<BinaryExpr>(line, op, std::move(lhs), std::move(rhs));
  seal(*node, {node->lhs.get(), node->rhs.get()});
  return node;
}

// Jinja2 3.1 ends a tuple only before these tokens: its check for extra end names never
// matches (test_any() gets them as one tuple), so a trailing comma before `in` is an error there.
bool Parser::is_tuple_end() const {
  const Token& token = current();
  return token.type == TokenType::VariableEnd || token.type == TokenType::BlockEnd || at_op(")");
}

ExprPtr Parser::parse_tuple(bool with_conditional, bool explicit_parentheses) {
  int line = current().line;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (is_tuple_end()) break;
    items.push_back(parse_expression(with_conditional));
    if (!at_op(",")) break;
    is_tuple = true;
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items.front());
    if (!explicit_parentheses) fail_unexpected(current(), "an expression");
  }
  auto tuple = std::make_unique<SequenceExpr>(ExprKind::Tuple, line);
  tuple->items = std::move(items);
  for (const auto& item : tuple->items) seal(*tuple, {item.get()});
  return tuple;
}

ExprPtr Parser::parse_expression(bool with_conditional) {
  DepthGuard guard(*this, current().line);
  return with_conditional ? parse_conditional() : parse_or();
}

ExprPtr Parser::parse_conditional() {
  int line = current().line;
  ExprPtr expr = parse_or();
  while (skip_name("if")) {
    auto node = std::make_unique<ConditionalExpr>(line);
    node->then = std::move(expr);
    node->condition = parse_or();
    if (skip_name("else")) node->otherwise = parse_conditional();
    seal(*node, {node->then.get(), node->condition.get(), node->otherwise.get()});
    expr = std::move(node);
    line = current().line;
  }
  return expr;
}

ExprPtr Parser::parse_or() {
  int line = current().line;
  ExprPtr left = parse_and();
  while (skip_name("or")) {
    left = binary(line, BinaryOp::Or, std::move(left), parse_and());
    line = current().line;
  }
  return left;
}

ExprPtr Parser::parse_and() {
  int line = current().line;
  ExprPtr left = parse_not();
  while (skip_name("and")) {
    left = binary(line, BinaryOp::And, std::move(left), parse_not());
    line = current().line;
  }
  return left;
}

ExprPtr Parser::parse_not() {
  if (at_name("not")) {
    int line = next().line;
    DepthGuard guard(*this, line);
    auto node = std::make_unique<UnaryExpr>(line, UnaryOp::Not, parse_not());
    seal(*node, {node->operand.get()});
    return node;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  int line = current().line;
  ExprPtr first = parse_math1();
  std::unique_ptr<CompareExpr> node;
  while (true) {
    CompareOp op;
    const Token& token = current();
    if (token.type == TokenType::Operator && token.text == "==") {
      op = CompareOp::Eq;
    } else if (token.type == TokenType::Operator && token.text == "!=") {
      op = CompareOp::Ne;
    } else if (token.type == TokenType::Operator && token.text == "<") {
      op = CompareOp::Lt;
    } else if (token.type == TokenType::Operator && token.text == "<=") {
      op = CompareOp::Le;
    } else if (token.type == TokenType::Operator && token.text == ">") {
      op = CompareOp::Gt;
    } else if (token.type == TokenType::Operator && token.text == ">=") {
      op = CompareOp::Ge;
    } else if (at_name("in")) {
      op = CompareOp::In;
    } else if (at_name("not") && peek().type == TokenType::Name && peek().text == "in") {
      next();
      op = CompareOp::NotIn;
    } else {
      break;
    }
    next();
    if (!node) {
      node = std::make_unique<CompareExpr>(line);
      node->first = std::move(first);
      seal(*node, {node->first.get()});
    }
    node->rest.emplace_back(op, parse_math1());
    seal(*node, {node->rest.back().second.get()});
  }
  if (!node) return first;
  return node;
}

ExprPtr Parser::parse_math1() {
  int line = current().line;
  ExprPtr left = parse_concat();
  while (at_op("+") || at_op("-")) {
    BinaryOp op = next().text == "+" ? BinaryOp::Add : BinaryOp::Sub;
    left = binary(line, op, std::move(left), parse_concat());
    line = current().line;
  }
  return left;
}

ExprPtr Parser::parse_concat() {
  int line = current().line;
  ExprPtr left = parse_math2();
  while (skip_op("~")) {
    left = binary(line, BinaryOp::Concat, std::move(left), parse_math2());
    line = current().line;
  }
  return left;
}

ExprPtr Parser::parse_math2() {
  int line = current().line;
  ExprPtr left = parse_pow();
  while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
    const std::string& op = next().text;
    BinaryOp kind = op == "*"    ? BinaryOp::Mul
                    : op == "/"  ? BinaryOp::Div
                    : op == "//" ? BinaryOp::FloorDiv
                                 : BinaryOp::Mod;
    left = binary(line, kind, std::move(left), parse_pow());
    line = current().line;
  }
  return left;
}

ExprPtr Parser::parse_pow() {
  int line = current().line;
  ExprPtr left = parse_unary(true);
  while (skip_op("**")) {
    left = binary(line, BinaryOp::Pow, std::move(left), parse_unary(true));
    line = current().line;
  }
  return left;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  int line = current().line;
  DepthGuard guard(*this, line);
  ExprPtr node;
  if (at_op("-") || at_op("+")) {
    UnaryOp op = next().text == "-" ? UnaryOp::Negate : UnaryOp::Plus;
    node = std::make_unique<UnaryExpr>(line, op, parse_unary(false));
    seal(*node, {static_cast<UnaryExpr&>(*node).operand.get()});
  } else {
    node = parse_primary();
  }
  node = parse_postfix(std::move(node));
  if (with_filter) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr Parser::parse_primary() {
  const Token& token = current();
  int line = token.line;
  switch (token.type) {
    case TokenType::Name: {
      std::string name = next().text;
      if (name == "true" || name == "True") return std::make_unique<LiteralExpr>(line, Value(true));
      if (name == "false" || name == "False") {
        return std::make_unique<LiteralExpr>(line, Value(false));
      }
      if (name == "none" || name == "None")
        return std::make_unique<LiteralExpr>(line, Value::none());
      if (!macros_.empty()) {
        MacroStmt& macro = *macros_.back();
        macro.uses_varargs = macro.uses_varargs || name == "varargs";
        macro.uses_kwargs = macro.uses_kwargs || name == "kwargs";
        macro.uses_caller = macro.uses_caller || name == "caller";
      }
      return std::make_unique<NameExpr>(line, std::move(name));
    }
    case TokenType::String: {
      std::string text;
      while (current().type == TokenType::String) text += next().text;  // "a" "b" is "ab"
      return std::make_unique<LiteralExpr>(line, Value(std::move(text)));
    }
    case TokenType::Integer:
      return std::make_unique<LiteralExpr>(line, Value(next().integer));
    case TokenType::Float:
      return std::make_unique<LiteralExpr>(line, Value(next().number));
    case TokenType::Operator:
      if (token.text == "(") {
        next();
        ExprPtr node = parse_tuple(true, true);
        expect_op(")");
        return node;
      }
      if (token.text == "[") return parse_list();
      if (token.text == "{") return parse_dict();
      break;
    default:
      break;
  }
  fail_unexpected(token, "an expression");
}

ExprPtr Parser::parse_list() {
  auto list = std::make_unique<SequenceExpr>(ExprKind::List, current().line);
  expect_op("[");
  while (!at_op("]")) {
    if (!list->items.empty()) expect_op(",");
    if (at_op("]")) break;
    list->items.push_back(parse_expression());
    seal(*list, {list->items.back().get()});
  }
  expect_op("]");
  return list;
}

ExprPtr Parser::parse_dict() {
  auto dict = std::make_unique<DictExpr>(current().line);
  expect_op("{");
  while (!at_op("}")) {
    if (!dict->items.empty()) expect_op(",");
    if (at_op("}")) break;
    ExprPtr key = parse_expression();
    expect_op(":");
    ExprPtr value = parse_expression();
    seal(*dict, {key.get(), value.get()});
    dict->items.emplace_back(std::move(key), std::move(value));
  }
  expect_op("}");
  return dict;
}

ExprPtr Parser::parse_postfix(ExprPtr node) {
  while (true) {
    if (at_op(".") || at_op("[")) {
      node = parse_subscript(std::move(node));
    } else if (at_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr Parser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (at_op("|")) {
      node = parse_filter(std::move(node), false);
    } else if (at_name("is")) {
      node = parse_test(std::move(node));
    } else if (at_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr Parser::parse_subscript(ExprPtr node) {
  const Token& token = next();
  int line = token.line;
  if (token.text == ".") {
    const Token& attribute = next();
    ExprPtr result;
    if (attribute.type == TokenType::Name) {
      result = std::make_unique<AttributeExpr>(line, std::move(node), attribute.text);
      seal(*result, {static_cast<AttributeExpr&>(*result).object.get()});
    } else if (attribute.type == TokenType::Integer) {
      auto index = std::make_unique<LiteralExpr>(attribute.line, Value(attribute.integer));
      result = std::make_unique<ItemExpr>(line, std::move(node), std::move(index));
      seal(*result, {static_cast<ItemExpr&>(*result).object.get()});
    } else {
      fail_unexpected(attribute, "a name or number after '.'");
    }
    return result;
  }
  std::vector<ExprPtr> args;
  while (!at_op("]")) {
    if (!args.empty()) expect_op(",");
    args.push_back(parse_subscript_item());
  }
  expect_op("]");
  if (args.empty()) fail(line, "expected a subscript inside '[]'");
  if (args.size() == 1 && args.front()->kind == ExprKind::Slice) {
    auto& slice = static_cast<SliceExpr&>(*args.front());
    slice.object = std::move(node);
    seal(slice, {slice.object.get()});
    return std::move(args.front());
  }
  ExprPtr index;
  if (args.size() == 1) {
    index = std::move(args.front());
  } else {
    auto tuple = std::make_unique<SequenceExpr>(ExprKind::Tuple, line);
    for (auto& arg : args) {
      if (arg->kind == ExprKind::Slice) fail(line, "multi-dimensional slices are not supported");
      seal(*tuple, {arg.get()});
      tuple->items.push_back(std::move(arg));
    }
    index = std::move(tuple);
  }
  auto item = std::make_unique<ItemExpr>(line, std::move(node), std::move(index));
  seal(*item, {item->object.get(), item->index.get()});
  return item;
}

ExprPtr Parser::parse_subscript_item() {
  auto slice = std::make_unique<SliceExpr>(current().line);
  if (!skip_op(":")) {
    ExprPtr index = parse_expression();
    if (!skip_op(":")) return index;
    slice->start = std::move(index);
  }
  auto at_end = [&] { return at_op("]") || at_op(","); };
  if (!at_op(":") && !at_end()) slice->stop = parse_expression();
  if (skip_op(":") && !at_end()) slice->step = parse_expression();
  seal(*slice, {slice->start.get(), slice->stop.get(), slice->step.get()});
  return slice;
}

ExprPtr Parser::parse_call(ExprPtr callee) {
  auto call = std::make_unique<CallExpr>(current().line);
  call->callee = std::move(callee);
  call->args = parse_call_args();
  call->depth = args_depth(call->args) + 1;
  seal(*call, {call->callee.get()});
  return call;
}

ArgumentExprs Parser::parse_call_args() {
  expect_op("(");
  ArgumentExprs args;
  bool require_comma = false;
  while (!at_op(")")) {
    if (require_comma) {
      expect_op(",");
      if (at_op(")")) break;  // trailing comma
    }
    if (at_op("*") || at_op("**")) {
      fail(current().line, "'*args' and '**kwargs' in calls are not supported");
    }
    if (current().type == TokenType::Name && peek().type == TokenType::Operator &&
        peek().text == "=") {
      int line = current().line;
      std::string key = next().text;
      next();
      for (const auto& [existing, value] : args.keywords) {
        if (existing == key) fail(line, fmt::format("keyword argument repeated: {}", key));
      }
      args.keywords.emplace_back(std::move(key), parse_expression());
    } else {
      if (!args.keywords.empty())
        fail(current().line, "positional argument follows keyword argument");
      args.positional.push_back(parse_expression());
    }
    require_comma = true;
  }
  expect_op(")");
  return args;
}

std::string Parser::parse_dotted_name() {
  std::string name = expect_name();
  while (skip_op(".")) {
    name += '.';
    name += expect_name();
  }
  return name;
}

ExprPtr Parser::parse_filter(ExprPtr node, bool start_inline) {
  while (at_op("|") || start_inline) {
    if (!start_inline) next();
    start_inline = false;
    auto filter = std::make_unique<FilterExpr>(current().line);
    filter->operand = std::move(node);
    filter->name = parse_dotted_name();
    if (at_op("(")) filter->args = parse_call_args();
    filter->depth = args_depth(filter->args) + 1;
    seal(*filter, {filter->operand.get()});
    node = std::move(filter);
  }
  return node;
}

ExprPtr Parser::parse_test(ExprPtr node) {
  auto test = std::make_unique<TestExpr>(next().line);
  test->operand = std::move(node);
  test->negated = skip_name("not");
  test->name = parse_dotted_name();
  const Token& token = current();
  if (at_op("(")) {
    test->args = parse_call_args();
  } else if ((token.type == TokenType::Name || token.type == TokenType::String ||
              token.type == TokenType::Integer || token.type == TokenType::Float || at_op("[") ||
              at_op("{")) &&
             !at_name("else") && !at_name("or") && !at_name("and")) {
    // `x is divisibleby 3`: one argument without parentheses.
    if (at_name("is")) fail(token.line, "you cannot chain multiple tests with 'is'");
    test->args.positional.push_back(parse_postfix(parse_primary()));
  }
  test->depth = args_depth(test->args) + 1;
  seal(*test, {test->operand.get()});
  return test;
}

}  // namespace flow2::chat
