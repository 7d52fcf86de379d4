// Statements: the template body, if/for/set/macro/call/filter/with/generation blocks, loop
// controls, do and print.
#include "chat/parser.h"

#include <fmt/format.h>

#include <algorithm>

#include "chat/unicode.h"
#include "flow2/error.h"

namespace flow2::chat {
namespace {

bool contains(std::initializer_list<std::string_view> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string quote_tags(std::initializer_list<std::string_view> tags) {
  std::string out;
  size_t i = 0;
  for (std::string_view tag : tags) {
    if (i > 0) out += i + 1 == tags.size() ? " or " : ", ";
    out += fmt::format("'{{% {} %}}'", tag);
    ++i;
  }
  return out;
}

// Jinja2 statements this interpreter does not implement: templates that load other templates or
// change autoescaping.
bool is_unsupported_statement(std::string_view name) {
  return contains({"extends", "block", "include", "import", "from", "autoescape"}, name);
}

bool is_closing_tag(std::string_view name) {
  return name.starts_with("end") || name == "else" || name == "elif";
}

}  // namespace

std::unique_ptr<TemplateAst> parse_template(std::string_view source, const std::string& name) {
  if (!is_valid_utf8(source)) throw Error(fmt::format("{}: the template is not valid UTF-8", name));
  Parser parser(tokenize(source, name), name);
  auto ast = std::make_unique<TemplateAst>();
  ast->body = parser.parse();
  check_filter_and_test_names(*ast, name);
  return ast;
}

Parser::Parser(std::vector<Token> tokens, const std::string& name)
    : tokens_(std::move(tokens)), name_(name) {}

Body Parser::parse() {
  return parse_body({});
}

const Token& Parser::peek(size_t ahead) const {
  return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
}

const Token& Parser::next() {
  const Token& token = tokens_[pos_];
  if (pos_ + 1 < tokens_.size()) ++pos_;
  return token;
}

bool Parser::at_name(std::string_view name) const {
  return current().type == TokenType::Name && current().text == name;
}

bool Parser::at_op(std::string_view op) const {
  return current().type == TokenType::Operator && current().text == op;
}

bool Parser::skip_name(std::string_view name) {
  if (!at_name(name)) return false;
  next();
  return true;
}

bool Parser::skip_op(std::string_view op) {
  if (!at_op(op)) return false;
  next();
  return true;
}

void Parser::expect_op(std::string_view op) {
  if (!skip_op(op)) fail_unexpected(current(), fmt::format("'{}'", op));
}

std::string Parser::expect_name() {
  if (current().type != TokenType::Name) fail_unexpected(current(), "a name");
  return next().text;
}

void Parser::expect_block_end() {
  if (current().type != TokenType::BlockEnd) fail_unexpected(current(), "end of statement block");
  next();
}

void Parser::fail(int line, const std::string& message) const {
  throw Error(fmt::format("{} line {}: {}", name_, line, message));
}

void Parser::fail_unexpected(const Token& token, std::string_view expected) const {
  fail(token.line, fmt::format("expected {}, got {}", expected, describe(token)));
}

Body Parser::parse_body(Names end_tags) {
  Body body;
  while (true) {
    const Token& token = current();
    switch (token.type) {
      case TokenType::Text:
        body.push_back(std::make_unique<TextStmt>(token.line, token.text));
        next();
        break;
      case TokenType::VariableBegin: {
        int line = token.line;
        next();
        ExprPtr expr = parse_tuple(true, false);
        if (current().type != TokenType::VariableEnd) {
          fail_unexpected(current(), "end of print statement");
        }
        next();
        body.push_back(std::make_unique<ExprStmt>(StmtKind::Print, line, std::move(expr)));
        break;
      }
      case TokenType::BlockBegin: {
        const Token& name = peek();
        if (name.type == TokenType::Name && contains(end_tags, name.text)) {
          next();  // leaves the end tag's name as the current token
          return body;
        }
        next();
        body.push_back(parse_statement());
        break;
      }
      case TokenType::End:
        if (end_tags.size() == 0) return body;
        fail(open_.back().line,
             fmt::format("'{{% {} %}}' is never closed: expected {} before the end of the template",
                         open_.back().tag, quote_tags(end_tags)));
      default:
        fail_unexpected(token, "template text or a tag");
    }
  }
}

Body Parser::parse_block_body(std::string_view tag, int line, Names end_tags) {
  if (static_cast<int>(open_.size()) >= kMaxBlockDepth) {
    fail(line, fmt::format("blocks nested more than {} deep", kMaxBlockDepth));
  }
  open_.push_back(OpenBlock{std::string(tag), line});
  Body body = parse_body(end_tags);
  open_.pop_back();
  return body;
}

StmtPtr Parser::parse_statement() {
  const Token& token = current();
  if (token.type != TokenType::Name) fail_unexpected(token, "a statement name after '{%'");
  std::string name = token.text;
  int line = token.line;
  next();
  if (name == "if") return parse_if(line);
  if (name == "for") return parse_for(line);
  if (name == "set") return parse_set(line);
  if (name == "macro") return parse_macro(line);
  if (name == "call") return parse_call_block(line);
  if (name == "filter") return parse_filter_block(line);
  if (name == "with") return parse_with(line);
  if (name == "generation") return parse_scope(line, "endgeneration");
  if (name == "break" || name == "continue") {
    if (loops_ == 0) fail(line, fmt::format("'{{% {} %}}' outside of a for loop", name));
    expect_block_end();
    return std::make_unique<Stmt>(name == "break" ? StmtKind::Break : StmtKind::Continue, line);
  }
  if (name == "do") {
    ExprPtr expr = parse_tuple(true, false);
    expect_block_end();
    return std::make_unique<ExprStmt>(StmtKind::Do, line, std::move(expr));
  }
  if (name == "print") {
    auto scope = std::make_unique<ScopeStmt>(line);
    while (current().type != TokenType::BlockEnd) {
      if (!scope->body.empty()) expect_op(",");
      scope->body.push_back(std::make_unique<ExprStmt>(StmtKind::Print, line, parse_expression()));
    }
    expect_block_end();
    return scope;
  }
  if (is_unsupported_statement(name)) {
    fail(line, fmt::format("'{{% {} %}}' is not supported in chat templates", name));
  }
  if (is_closing_tag(name)) {
    if (open_.empty()) fail(line, fmt::format("unexpected '{{% {} %}}': no block is open", name));
    fail(line, fmt::format("unexpected '{{% {} %}}': the innermost open block is '{{% {} %}}' from "
                           "line {}",
                           name, open_.back().tag, open_.back().line));
  }
  fail(line, fmt::format("unknown statement '{}'", name));
}

StmtPtr Parser::parse_if(int line) {
  auto stmt = std::make_unique<IfStmt>(line);
  while (true) {
    ExprPtr condition = parse_tuple(false, false);
    expect_block_end();
    Body body = parse_block_body("if", line, {"elif", "else", "endif"});
    stmt->branches.emplace_back(std::move(condition), std::move(body));
    std::string tag = next().text;
    if (tag == "elif") continue;
    expect_block_end();
    if (tag == "else") {
      stmt->otherwise = parse_block_body("if", line, {"endif"});
      next();
      expect_block_end();
    }
    break;
  }
  return stmt;
}

StmtPtr Parser::parse_for(int line) {
  auto stmt = std::make_unique<ForStmt>(line);
  stmt->target = parse_assign_target(false);
  if (!skip_name("in")) fail_unexpected(current(), "'in'");
  stmt->iterable = parse_tuple(false, false);
  if (skip_name("if")) stmt->filter = parse_expression();
  if (at_name("recursive")) fail(line, "recursive for loops are not supported");
  expect_block_end();
  ++loops_;
  stmt->body = parse_block_body("for", line, {"endfor", "else"});
  --loops_;
  if (next().text == "else") {
    expect_block_end();
    stmt->otherwise = parse_block_body("for", line, {"endfor"});
    next();
  }
  expect_block_end();
  return stmt;
}

StmtPtr Parser::parse_set(int line) {
  AssignTarget target = parse_assign_target(true);
  if (skip_op("=")) {
    auto stmt = std::make_unique<SetStmt>(line);
    stmt->target = std::move(target);
    stmt->value = parse_tuple(true, false);
    expect_block_end();
    return stmt;
  }
  auto stmt = std::make_unique<SetBlockStmt>(line);
  stmt->target = std::move(target);
  if (at_op("|"))
    stmt->filter = parse_filter(std::make_unique<Expr>(ExprKind::BlockInput, line), false);
  expect_block_end();
  int loops = loops_;
  loops_ = 0;  // break/continue cannot leave the block
  stmt->body = parse_block_body("set", line, {"endset"});
  loops_ = loops;
  next();
  expect_block_end();
  return stmt;
}

AssignTarget Parser::parse_assign_target(bool allow_namespace) {
  AssignTarget target;
  bool parentheses = skip_op("(");
  while (true) {
    if (current().type == TokenType::Name &&
        contains({"true", "false", "none", "True", "False", "None"}, current().text)) {
      fail(current().line, fmt::format("cannot assign to '{}'", current().text));
    }
    target.names.push_back(expect_name());
    if (allow_namespace && !parentheses && at_op(".")) {
      next();
      target.attribute = expect_name();
      if (target.names.size() > 1 || at_op(",")) {
        fail(current().line, "namespace attributes cannot be assigned by unpacking");
      }
      break;
    }
    if (!skip_op(",")) break;
    target.unpack = true;
    // After a trailing comma the tuple may end, as in Jinja2, only at a closing token.
    bool end = parentheses ? at_op(")") : current().type == TokenType::BlockEnd;
    if (end) break;
  }
  if (parentheses) expect_op(")");
  return target;
}

void Parser::parse_signature(MacroStmt& macro) {
  expect_op("(");
  bool defaults = false;
  while (!at_op(")")) {
    if (!macro.params.empty()) expect_op(",");
    int line = current().line;
    std::string name = expect_name();
    ExprPtr value;
    if (skip_op("=")) {
      value = parse_expression();
      defaults = true;
    } else if (defaults) {
      fail(line, "non-default argument follows default argument");
    }
    macro.params.emplace_back(std::move(name), std::move(value));
  }
  expect_op(")");
}

Body Parser::parse_macro_body(MacroStmt& macro, std::string_view end_tag) {
  int loops = loops_;
  loops_ = 0;
  macros_.push_back(&macro);
  Body body =
      parse_block_body(macro.kind == StmtKind::Macro ? "macro" : "call", macro.line, {end_tag});
  macros_.pop_back();
  loops_ = loops;
  next();
  expect_block_end();
  return body;
}

StmtPtr Parser::parse_macro(int line) {
  auto macro = std::make_unique<MacroStmt>(StmtKind::Macro, line);
  macro->name = expect_name();
  parse_signature(*macro);
  expect_block_end();
  macro->body = parse_macro_body(*macro, "endmacro");
  return macro;
}

StmtPtr Parser::parse_call_block(int line) {
  auto block = std::make_unique<CallBlockStmt>(line);
  block->name = "caller";
  if (at_op("(")) parse_signature(*block);
  block->call = parse_expression();
  if (block->call->kind != ExprKind::Call) fail(line, "'{% call %}' expects a macro call");
  expect_block_end();
  block->body = parse_macro_body(*block, "endcall");
  return block;
}

StmtPtr Parser::parse_filter_block(int line) {
  auto block = std::make_unique<FilterBlockStmt>(line);
  block->filter = parse_filter(std::make_unique<Expr>(ExprKind::BlockInput, line), true);
  expect_block_end();
  int loops = loops_;
  loops_ = 0;
  block->body = parse_block_body("filter", line, {"endfilter"});
  loops_ = loops;
  next();
  expect_block_end();
  return block;
}

StmtPtr Parser::parse_with(int line) {
  auto stmt = std::make_unique<WithStmt>(line);
  while (current().type != TokenType::BlockEnd) {
    if (!stmt->assignments.empty()) expect_op(",");
    std::string name = expect_name();
    expect_op("=");
    stmt->assignments.emplace_back(std::move(name), parse_expression());
  }
  expect_block_end();
  stmt->body = parse_block_body("with", line, {"endwith"});
  next();
  expect_block_end();
  return stmt;
}

// {% generation %}: transformers' AssistantTracker compiles it to a call block, so its body is a
// scope of its own in which break/continue are not allowed.
StmtPtr Parser::parse_scope(int line, std::string_view end_tag) {
  auto stmt = std::make_unique<ScopeStmt>(line);
  expect_block_end();
  int loops = loops_;
  loops_ = 0;
  stmt->body = parse_block_body("generation", line, {end_tag});
  next();
  expect_block_end();
  loops_ = loops;
  return stmt;
}

}  // namespace flow2::chat
