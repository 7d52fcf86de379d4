// The syntax tree of a chat template: expressions and statements, each with its template line.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace flow2::chat {

enum class ExprKind : uint8_t {
  Literal,
  Name,
  List,
  Tuple,
  Dict,
  Attribute,    // x.name
  Item,         // x[i]
  Slice,        // x[a:b:c]
  Call,         // f(args)
  Filter,       // x | name(args)
  Test,         // x is [not] name(args)
  Unary,        // -x, +x, not x
  Binary,       // arithmetic, ~, and, or
  Compare,      // a < b == c, in, not in
  Conditional,  // a if b else c
  BlockInput,   // the rendered body in {% filter %} and {% set x | f %} blocks
};

struct Expr {
  Expr(ExprKind kind, int line) : kind(kind), line(line) {}
  virtual ~Expr() = default;
  ExprKind kind;
  int line;
  int depth = 1;  // height of the subtree, bounded by the parser
};
using ExprPtr = std::unique_ptr<Expr>;

struct ArgumentExprs {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keywords;
};

struct LiteralExpr : Expr {
  LiteralExpr(int line, Value value) : Expr(ExprKind::Literal, line), value(std::move(value)) {}
  Value value;
};

struct NameExpr : Expr {
  NameExpr(int line, std::string name) : Expr(ExprKind::Name, line), name(std::move(name)) {}
  std::string name;
};

struct SequenceExpr : Expr {  // List or Tuple
  using Expr::Expr;
  std::vector<ExprPtr> items;
};

struct DictExpr : Expr {
  explicit DictExpr(int line) : Expr(ExprKind::Dict, line) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

struct AttributeExpr : Expr {
  AttributeExpr(int line, ExprPtr object, std::string name)
      : Expr(ExprKind::Attribute, line), object(std::move(object)), name(std::move(name)) {}
  ExprPtr object;
  std::string name;
};

struct ItemExpr : Expr {
  ItemExpr(int line, ExprPtr object, ExprPtr index)
      : Expr(ExprKind::Item, line), object(std::move(object)), index(std::move(index)) {}
  ExprPtr object;
  ExprPtr index;
};

struct SliceExpr : Expr {
  explicit SliceExpr(int line) : Expr(ExprKind::Slice, line) {}
  ExprPtr object, start, stop, step;  // null bounds are None
};

struct CallExpr : Expr {
  explicit CallExpr(int line) : Expr(ExprKind::Call, line) {}
  ExprPtr callee;
  ArgumentExprs args;
};

struct FilterExpr : Expr {
  explicit FilterExpr(int line) : Expr(ExprKind::Filter, line) {}
  ExprPtr operand;
  std::string name;
  ArgumentExprs args;
};

struct TestExpr : Expr {
  explicit TestExpr(int line) : Expr(ExprKind::Test, line) {}
  ExprPtr operand;
  std::string name;
  ArgumentExprs args;
  bool negated = false;
};

enum class UnaryOp : uint8_t { Negate, Plus, Not };

struct UnaryExpr : Expr {
  UnaryExpr(int line, UnaryOp op, ExprPtr operand)
      : Expr(ExprKind::Unary, line), op(op), operand(std::move(operand)) {}
  UnaryOp op;
  ExprPtr operand;
};

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Concat, And, Or };

struct BinaryExpr : Expr {
  BinaryExpr(int line, BinaryOp op, ExprPtr lhs, ExprPtr rhs)
      : Expr(ExprKind::Binary, line), op(op), lhs(std::move(lhs)), rhs(std::move(rhs)) {}
  BinaryOp op;
  ExprPtr lhs, rhs;
};

enum class CompareOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct CompareExpr : Expr {
  explicit CompareExpr(int line) : Expr(ExprKind::Compare, line) {}
  ExprPtr first;
  std::vector<std::pair<CompareOp, ExprPtr>> rest;
};

struct ConditionalExpr : Expr {
  explicit ConditionalExpr(int line) : Expr(ExprKind::Conditional, line) {}
  ExprPtr condition, then, otherwise;  // otherwise may be null: undefined when false
};

enum class StmtKind : uint8_t {
  Text,
  Print,
  If,
  For,
  Set,
  SetBlock,
  Macro,
  CallBlock,
  FilterBlock,
  With,
  Scope,  // {% generation %}: its body in a scope of its own
  Break,
  Continue,
  Do,
};

struct Stmt {
  Stmt(StmtKind kind, int line) : kind(kind), line(line) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  int line;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// What a set, for or with statement assigns to: a name, names to unpack, or a namespace attribute.
struct AssignTarget {
  std::vector<std::string> names;
  bool unpack = false;    // `a, b = ...`
  std::string attribute;  // `ns.attr = ...`: names holds the namespace
};

struct TextStmt : Stmt {
  TextStmt(int line, std::string text) : Stmt(StmtKind::Text, line), text(std::move(text)) {}
  std::string text;
};

struct ExprStmt : Stmt {  // Print or Do
  ExprStmt(StmtKind kind, int line, ExprPtr expr) : Stmt(kind, line), expr(std::move(expr)) {}
  ExprPtr expr;
};

struct IfStmt : Stmt {
  explicit IfStmt(int line) : Stmt(StmtKind::If, line) {}
  std::vector<std::pair<ExprPtr, Body>> branches;  // if and elifs
  Body otherwise;
};

struct ForStmt : Stmt {
  explicit ForStmt(int line) : Stmt(StmtKind::For, line) {}
  AssignTarget target;
  ExprPtr iterable;
  ExprPtr filter;  // `for x in y if cond`, may be null
  Body body;
  Body otherwise;
};

struct SetStmt : Stmt {
  explicit SetStmt(int line) : Stmt(StmtKind::Set, line) {}
  AssignTarget target;
  ExprPtr value;
};

struct SetBlockStmt : Stmt {
  explicit SetBlockStmt(int line) : Stmt(StmtKind::SetBlock, line) {}
  AssignTarget target;
  ExprPtr filter;  // a filter chain over BlockInput, may be null
  Body body;
};

struct MacroStmt : Stmt {
  MacroStmt(StmtKind kind, int line) : Stmt(kind, line) {}
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
  bool uses_varargs = false;  // the body mentions `varargs`, `kwargs` or `caller`
  bool uses_kwargs = false;
  bool uses_caller = false;
};

struct CallBlockStmt : MacroStmt {  // the body is the `caller` macro
  explicit CallBlockStmt(int line) : MacroStmt(StmtKind::CallBlock, line) {}
  ExprPtr call;  // a CallExpr
};

struct FilterBlockStmt : Stmt {
  explicit FilterBlockStmt(int line) : Stmt(StmtKind::FilterBlock, line) {}
  ExprPtr filter;  // a filter chain over BlockInput
  Body body;
};

struct WithStmt : Stmt {
  explicit WithStmt(int line) : Stmt(StmtKind::With, line) {}
  std::vector<std::pair<std::string, ExprPtr>> assignments;
  Body body;
};

struct ScopeStmt : Stmt {
  explicit ScopeStmt(int line) : Stmt(StmtKind::Scope, line) {}
  Body body;
};

struct TemplateAst {
  Body body;
};

}  // namespace flow2::chat
