// Compile-time check of filter and test names, where Jinja2 makes it: everywhere except in
// if-statements and inline ifs ("soft" frames), which check when they run.
#include <fmt/format.h>

#include "chat/filters.h"
#include "chat/parser.h"
#include "chat/predicates.h"
#include "flow2/error.h"

namespace flow2::chat {
namespace {

class NameChecker {
 public:
  explicit NameChecker(const std::string& name) : name_(name) {}

  void body(const Body& body, bool soft) {
    for (const auto& stmt : body) statement(*stmt, soft);
  }

 private:
  void statement(const Stmt& stmt, bool soft) {
    switch (stmt.kind) {
      case StmtKind::Print:
      case StmtKind::Do:
        expr(static_cast<const ExprStmt&>(stmt).expr.get(), soft);
        break;
      case StmtKind::If:
        for (const auto& [condition, branch] : static_cast<const IfStmt&>(stmt).branches) {
          expr(condition.get(), true);
          body(branch, true);
        }
        body(static_cast<const IfStmt&>(stmt).otherwise, true);
        break;
      case StmtKind::For: {
        const auto& loop = static_cast<const ForStmt&>(stmt);
        expr(loop.iterable.get(), soft);
        expr(loop.filter.get(), false);
        body(loop.body, false);
        body(loop.otherwise, false);
        break;
      }
      case StmtKind::Set:
        expr(static_cast<const SetStmt&>(stmt).value.get(), soft);
        break;
      case StmtKind::SetBlock:
        expr(static_cast<const SetBlockStmt&>(stmt).filter.get(), false);
        body(static_cast<const SetBlockStmt&>(stmt).body, false);
        break;
      case StmtKind::CallBlock:
        expr(static_cast<const CallBlockStmt&>(stmt).call.get(), soft);
        [[fallthrough]];
      case StmtKind::Macro:
        for (const auto& [param, value] : static_cast<const MacroStmt&>(stmt).params) {
          expr(value.get(), false);
        }
        body(static_cast<const MacroStmt&>(stmt).body, false);
        break;
      case StmtKind::FilterBlock:
        expr(static_cast<const FilterBlockStmt&>(stmt).filter.get(), false);
        body(static_cast<const FilterBlockStmt&>(stmt).body, false);
        break;
      case StmtKind::With:
        for (const auto& [name, value] : static_cast<const WithStmt&>(stmt).assignments) {
          expr(value.get(), soft);
        }
        body(static_cast<const WithStmt&>(stmt).body, false);
        break;
      case StmtKind::Scope:
        body(static_cast<const ScopeStmt&>(stmt).body, false);
        break;
      case StmtKind::Text:
      case StmtKind::Break:
      case StmtKind::Continue:
        break;
    }
  }

  void args(const ArgumentExprs& arguments, bool soft) {
    for (const auto& arg : arguments.positional) expr(arg.get(), soft);
    for (const auto& [key, arg] : arguments.keywords) expr(arg.get(), soft);
  }

  void expr(const Expr* node, bool soft) {
    if (!node) return;
    switch (node->kind) {
      case ExprKind::List:
      case ExprKind::Tuple:
        for (const auto& item : static_cast<const SequenceExpr*>(node)->items)
          expr(item.get(), soft);
        break;
      case ExprKind::Dict:
        for (const auto& [key, value] : static_cast<const DictExpr*>(node)->items) {
          expr(key.get(), soft);
          expr(value.get(), soft);
        }
        break;
      case ExprKind::Attribute:
        expr(static_cast<const AttributeExpr*>(node)->object.get(), soft);
        break;
      case ExprKind::Item:
        expr(static_cast<const ItemExpr*>(node)->object.get(), soft);
        expr(static_cast<const ItemExpr*>(node)->index.get(), soft);
        break;
      case ExprKind::Slice: {
        const auto* slice = static_cast<const SliceExpr*>(node);
        expr(slice->object.get(), soft);
        expr(slice->start.get(), soft);
        expr(slice->stop.get(), soft);
        expr(slice->step.get(), soft);
        break;
      }
      case ExprKind::Call:
        expr(static_cast<const CallExpr*>(node)->callee.get(), soft);
        args(static_cast<const CallExpr*>(node)->args, soft);
        break;
      case ExprKind::Filter: {
        const auto* filter = static_cast<const FilterExpr*>(node);
        if (!soft && !is_jinja_filter(filter->name)) {
          throw Error(
              fmt::format("{} line {}: unknown filter '{}'", name_, node->line, filter->name));
        }
        expr(filter->operand.get(), soft);
        args(filter->args, soft);
        break;
      }
      case ExprKind::Test: {
        const auto* test = static_cast<const TestExpr*>(node);
        if (!soft && !is_jinja_test(test->name)) {
          throw Error(fmt::format("{} line {}: unknown test '{}'", name_, node->line, test->name));
        }
        expr(test->operand.get(), soft);
        args(test->args, soft);
        break;
      }
      case ExprKind::Unary:
        expr(static_cast<const UnaryExpr*>(node)->operand.get(), soft);
        break;
      case ExprKind::Binary:
        expr(static_cast<const BinaryExpr*>(node)->lhs.get(), soft);
        expr(static_cast<const BinaryExpr*>(node)->rhs.get(), soft);
        break;
      case ExprKind::Compare:
        expr(static_cast<const CompareExpr*>(node)->first.get(), soft);
        for (const auto& [op, operand] : static_cast<const CompareExpr*>(node)->rest) {
          expr(operand.get(), soft);
        }
        break;
      case ExprKind::Conditional: {
        const auto* conditional = static_cast<const ConditionalExpr*>(node);
        expr(conditional->condition.get(), true);
        expr(conditional->then.get(), true);
        expr(conditional->otherwise.get(), true);
        break;
      }
      case ExprKind::Literal:
      case ExprKind::Name:
      case ExprKind::BlockInput:
        break;
    }
  }

  const std::string& name_;
};

}  // namespace

void check_filter_and_test_names(const TemplateAst& ast, const std::string& name) {
  NameChecker(name).body(ast.body, false);
}

}  // namespace flow2::chat
