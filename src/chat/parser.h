// Parser for chat templates: Jinja2's grammar for the statements and expressions that chat
// templates use. Syntax errors, unsupported statements and (outside if-blocks, as Jinja2 checks
// at compile time) unknown filters and tests throw flow2::Error naming the template line.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/ast.h"
#include "chat/lexer.h"

namespace flow2::chat {

std::unique_ptr<TemplateAst> parse_template(std::string_view source, const std::string& name);

// Jinja2 rejects unknown filter and test names when it compiles a template, except inside
// if-statements and inline ifs, where it waits until they run (name_check.cpp).
void check_filter_and_test_names(const TemplateAst& ast, const std::string& name);

// Nesting limits, so that hostile input fails cleanly instead of exhausting the stack.
inline constexpr int kMaxExpressionDepth = 100;
inline constexpr int kMaxBlockDepth = 100;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& name);
  Body parse();

 private:
  struct OpenBlock {
    std::string tag;
    int line;
  };
  using Names = std::initializer_list<std::string_view>;

  // Token stream (parser.cpp).
  const Token& current() const { return tokens_[pos_]; }
  const Token& peek(size_t ahead = 1) const;
  const Token& next();
  bool at_name(std::string_view name) const;
  bool at_op(std::string_view op) const;
  bool skip_name(std::string_view name);
  bool skip_op(std::string_view op);
  void expect_op(std::string_view op);
  std::string expect_name();
  void expect_block_end();
  [[noreturn]] void fail(int line, const std::string& message) const;
  [[noreturn]] void fail_unexpected(const Token& token, std::string_view expected) const;

  // Statements (parser.cpp).
  Body parse_body(Names end_tags);
  StmtPtr parse_statement();
  StmtPtr parse_if(int line);
  StmtPtr parse_for(int line);
  StmtPtr parse_set(int line);
  StmtPtr parse_macro(int line);
  StmtPtr parse_call_block(int line);
  StmtPtr parse_filter_block(int line);
  StmtPtr parse_with(int line);
  StmtPtr parse_scope(int line, std::string_view end_tag);
  AssignTarget parse_assign_target(bool allow_namespace);
  void parse_signature(MacroStmt& macro);
  Body parse_macro_body(MacroStmt& macro, std::string_view end_tag);
  Body parse_block_body(std::string_view tag, int line, Names end_tags);

  // Expressions (parse_expression.cpp).
  ExprPtr parse_tuple(bool with_conditional, bool explicit_parentheses);
  ExprPtr parse_expression(bool with_conditional = true);
  ExprPtr parse_conditional();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_list();
  ExprPtr parse_dict();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_subscript_item();
  ExprPtr parse_call(ExprPtr callee);
  ArgumentExprs parse_call_args();
  ExprPtr parse_filter(ExprPtr node, bool start_inline);
  ExprPtr parse_test(ExprPtr node);
  bool is_tuple_end() const;
  std::string parse_dotted_name();
  ExprPtr binary(int line, BinaryOp op, ExprPtr lhs, ExprPtr rhs);
  // Sets node.depth from its children and enforces kMaxExpressionDepth.
  void seal(Expr& node, std::initializer_list<const Expr*> children);
  int args_depth(const ArgumentExprs& args) const;

  struct DepthGuard {
    DepthGuard(Parser& parser, int line);
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  std::vector<Token> tokens_;
  const std::string& name_;
  size_t pos_ = 0;
  int depth_ = 0;  // recursion depth of the parse functions
  int loops_ = 0;  // for loops around the current statement (break/continue)
  std::vector<OpenBlock> open_;
  std::vector<MacroStmt*> macros_;  // enclosing macro definitions, innermost last
};

}  // namespace flow2::chat
