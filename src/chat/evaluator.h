// The interpreter: executes a parsed chat template against its variables with Jinja2's scoping
// (a for-loop iteration, macro call, with-block or call-block body is a scope of its own; if
// blocks are not), and counts the work against ChatTemplateLimits.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "flow2/chat_template.h"

namespace flow2::chat {

// Variables of one scope; lookups fall back to the parent. Scopes are owned by the statement
// executing them; macros keep a weak reference to the scope they were defined in, as Jinja2's
// macros are closures over it.
struct Scope : std::enable_shared_from_this<Scope> {
  explicit Scope(const Scope* parent) : parent(parent) {}
  const Value* lookup(std::string_view name) const;
  void set(std::string_view name, Value value);

  const Scope* parent;
  std::vector<std::pair<std::string, Value>> variables;
};

// Evaluation nesting (expressions, statements and macro calls together) beyond which rendering
// fails instead of risking the stack.
inline constexpr int kMaxEvaluationDepth = 400;

class Interpreter {
 public:
  explicit Interpreter(const ChatTemplateLimits& limits) : limits_(limits) {}

  // Renders the template; throws RuntimeError, with the line of the failing node, on errors.
  std::string render(const TemplateAst& ast, std::vector<std::pair<std::string, Value>> variables);

  // Counts `steps` units of work; RuntimeError past ChatTemplateLimits::max_steps.
  void charge(uint64_t steps);
  // RuntimeError if a string of `bytes` bytes (or a list of that many items) is over the limits.
  void check_size(size_t bytes) const;
  Value call(const Value& callee, CallArgs args);
  // Records that a list or namespace was modified: only such a container can close a reference
  // cycle, so emptying them all when the render ends frees everything the render made.
  void track_mutation(const Value& container);
  Value call_macro(const MacroStmt& macro, const std::weak_ptr<Scope>& scope, CallArgs args);

 private:
  enum class Flow { Normal, Break, Continue };

  struct DepthGuard {
    explicit DepthGuard(Interpreter& interpreter);
    ~DepthGuard() { --interpreter.depth_; }
    Interpreter& interpreter;
  };

  Flow exec_body(const Body& body, Scope& scope, std::string& out);
  Flow exec(const Stmt& stmt, Scope& scope, std::string& out);
  Flow exec_inner(const Stmt& stmt, Scope& scope, std::string& out);
  Flow exec_for(const ForStmt& stmt, Scope& scope, std::string& out);
  void exec_call_block(const CallBlockStmt& stmt, Scope& scope, std::string& out);
  void assign(const AssignTarget& target, const Value& value, Scope& scope);
  std::string render_block(const Body& body, Scope& scope);
  Value apply_filter_chain(const Expr& filter, Value input, Scope& scope);
  void append_output(std::string& out, const Value& value);

  Value eval(const Expr& expr, Scope& scope);
  Value eval_inner(const Expr& expr, Scope& scope);
  CallArgs eval_args(const ArgumentExprs& args, Scope& scope);

  ChatTemplateLimits limits_;
  std::vector<Value> mutated_;
  std::unordered_set<const void*> mutated_ids_;
  uint64_t steps_ = 0;
  int depth_ = 0;
  Value block_input_;
};

}  // namespace flow2::chat
