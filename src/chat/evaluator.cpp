// Statements, scopes, loops and macro calls.
#include "chat/evaluator.h"

#include "chat/builtins.h"
#include "chat/operators.h"
#include "chat/runtime_error.h"

namespace flow2::chat {
namespace {

// A template macro, or the body of a {% call %} block (the `caller` macro).
class MacroFunction : public Function {
 public:
  MacroFunction(const MacroStmt& macro, std::weak_ptr<Scope> scope)
      : macro_(macro), scope_(std::move(scope)) {}
  Value call(Interpreter& interpreter, CallArgs args) const override {
    return interpreter.call_macro(macro_, scope_, std::move(args));
  }
  std::string name() const override { return macro_.name; }

 private:
  const MacroStmt& macro_;
  std::weak_ptr<Scope> scope_;
};

// loop.cycle(a, b, ...): the argument at loop.index0 modulo their number.
class CycleFunction : public Function {
 public:
  explicit CycleFunction(int64_t index) : index_(index) {}
  Value call(Interpreter&, CallArgs args) const override {
    if (!args.keywords.empty()) runtime_fail("loop.cycle() takes no keyword arguments");
    if (args.positional.empty()) runtime_fail("no items for cycling given");
    return args.positional[static_cast<size_t>(index_) % args.positional.size()];
  }
  std::string name() const override { return "cycle"; }

 private:
  int64_t index_;
};

Value make_loop(const std::vector<Value>& items, size_t index) {
  auto i = static_cast<int64_t>(index);
  auto n = static_cast<int64_t>(items.size());
  Value loop = Value::object(ObjectKind::Loop);
  ObjectData& data = loop.as_object();
  data.attributes.reserve(13);
  data.set("index", Value(i + 1));
  data.set("index0", Value(i));
  data.set("revindex", Value(n - i));
  data.set("revindex0", Value(n - i - 1));
  data.set("first", Value(i == 0));
  data.set("last", Value(i == n - 1));
  data.set("length", Value(n));
  data.set("depth", Value(1));
  data.set("depth0", Value(0));
  if (i > 0) data.set("previtem", items[index - 1]);
  if (i + 1 < n) data.set("nextitem", items[index + 1]);
  data.set("cycle", Value(std::shared_ptr<Function>(std::make_shared<CycleFunction>(i))));
  return loop;
}

}  // namespace

const Value* Scope::lookup(std::string_view name) const {
  for (const Scope* scope = this; scope; scope = scope->parent) {
    for (const auto& [key, value] : scope->variables) {
      if (key == name) return &value;
    }
  }
  return nullptr;
}

void Scope::set(std::string_view name, Value value) {
  for (auto& [key, existing] : variables) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  variables.emplace_back(std::string(name), std::move(value));
}

Interpreter::DepthGuard::DepthGuard(Interpreter& interpreter) : interpreter(interpreter) {
  if (++interpreter.depth_ > kMaxEvaluationDepth) {
    --interpreter.depth_;
    runtime_fail("evaluation nested more than {} levels deep (recursive macro?)",
                 kMaxEvaluationDepth);
  }
}

std::string Interpreter::render(const TemplateAst& ast,
                                std::vector<std::pair<std::string, Value>> variables) {
  auto globals = std::make_shared<Scope>(nullptr);
  add_globals(*globals);
  auto context = std::make_shared<Scope>(globals.get());
  context->variables = std::move(variables);
  auto top = std::make_shared<Scope>(context.get());
  ValueLimitsScope value_limits(limits_.max_steps, limits_.max_output_bytes);
  // However the render ends, empty the modified containers to break any reference cycle.
  struct CycleBreaker {
    ~CycleBreaker() {
      for (Value& container : interpreter.mutated_) {
        if (container.is_list()) {
          std::vector<Value> items = std::move(container.as_list().items);
          container.as_list().items.clear();
        } else if (container.is_object()) {
          auto attributes = std::move(container.as_object().attributes);
          container.as_object().attributes.clear();
        }
      }
      interpreter.mutated_.clear();
      interpreter.mutated_ids_.clear();
    }
    Interpreter& interpreter;
  } cycle_breaker{*this};
  std::string out;
  exec_body(ast.body, *top, out);
  return out;
}

void Interpreter::track_mutation(const Value& container) {
  if (mutated_ids_.insert(container.identity()).second) mutated_.push_back(container);
}

void Interpreter::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps) {
    runtime_fail("rendering takes more than {} steps (ChatTemplateLimits::max_steps)",
                 limits_.max_steps);
  }
}

void Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    runtime_fail("a value of {} bytes or items exceeds ChatTemplateLimits::max_output_bytes ({})",
                 bytes, limits_.max_output_bytes);
  }
}

Value Interpreter::call(const Value& callee, CallArgs args) {
  if (callee.is_function()) {
    DepthGuard guard(*this);
    charge(1);
    return callee.as_function().call(*this, std::move(args));
  }
  if (callee.is_undefined()) {
    runtime_fail("{}", callee.undefined_hint().empty() ? "undefined is not callable"
                                                       : callee.undefined_hint());
  }
  runtime_fail("'{}' object is not callable", type_name(callee));
}

Value Interpreter::call_macro(const MacroStmt& macro, const std::weak_ptr<Scope>& scope,
                              CallArgs args) {
  std::shared_ptr<Scope> parent = scope.lock();
  if (!parent) {
    runtime_fail("macro '{}' was called after the block that defined it had ended", macro.name);
  }
  auto local = std::make_shared<Scope>(parent.get());
  const auto& params = macro.params;
  std::vector<bool> bound(params.size(), false);
  size_t given = std::min(args.positional.size(), params.size());
  for (size_t i = 0; i < given; ++i) {
    local->set(params[i].first, std::move(args.positional[i]));
    bound[i] = true;
  }
  if (args.positional.size() > params.size() && !macro.uses_varargs) {
    runtime_fail("macro '{}' takes not more than {} argument(s)", macro.name, params.size());
  }
  std::vector<Value> varargs(std::make_move_iterator(args.positional.begin() + given),
                             std::make_move_iterator(args.positional.end()));
  Value kwargs = Value::dict();
  for (auto& [key, value] : args.keywords) {
    size_t index = 0;
    while (index < params.size() && params[index].first != key) ++index;
    if (index < params.size()) {
      if (bound[index]) {
        runtime_fail("macro '{}' got multiple values for argument '{}'", macro.name, key);
      }
      local->set(key, std::move(value));
      bound[index] = true;
    } else if (key == "caller" && macro.uses_caller) {
      local->set("caller", std::move(value));
    } else if (macro.uses_kwargs) {
      kwargs.as_dict().set(Value(key), std::move(value));
    } else {
      runtime_fail("macro '{}' takes no keyword argument '{}'", macro.name, key);
    }
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (bound[i]) continue;
    const auto& [name, fallback] = params[i];
    local->set(name, fallback
                         ? eval(*fallback, *local)
                         : Value::undefined(fmt::format("parameter '{}' was not provided", name)));
  }
  if (macro.uses_varargs) local->set("varargs", Value::list(std::move(varargs), ListKind::Tuple));
  if (macro.uses_kwargs) local->set("kwargs", std::move(kwargs));
  std::string out;
  exec_body(macro.body, *local, out);
  return Value(std::move(out));
}

Interpreter::Flow Interpreter::exec_body(const Body& body, Scope& scope, std::string& out) {
  for (const auto& stmt : body) {
    Flow flow = exec(*stmt, scope, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt, Scope& scope, std::string& out) {
  DepthGuard guard(*this);
  charge(1);
  try {
    return exec_inner(stmt, scope, out);
  } catch (RuntimeError& error) {
    if (error.line == 0) error.line = stmt.line;
    throw;
  }
}

Interpreter::Flow Interpreter::exec_inner(const Stmt& stmt, Scope& scope, std::string& out) {
  switch (stmt.kind) {
    case StmtKind::Text: {
      const std::string& text = static_cast<const TextStmt&>(stmt).text;
      check_size(out.size() + text.size());
      out += text;
      return Flow::Normal;
    }
    case StmtKind::Print:
      append_output(out, eval(*static_cast<const ExprStmt&>(stmt).expr, scope));
      return Flow::Normal;
    case StmtKind::Do:
      eval(*static_cast<const ExprStmt&>(stmt).expr, scope);
      return Flow::Normal;
    case StmtKind::If: {
      const auto& branches = static_cast<const IfStmt&>(stmt);
      for (const auto& [condition, body] : branches.branches) {
        if (truthy(eval(*condition, scope))) return exec_body(body, scope, out);
      }
      return exec_body(branches.otherwise, scope, out);
    }
    case StmtKind::For:
      return exec_for(static_cast<const ForStmt&>(stmt), scope, out);
    case StmtKind::Set: {
      const auto& set = static_cast<const SetStmt&>(stmt);
      assign(set.target, eval(*set.value, scope), scope);
      return Flow::Normal;
    }
    case StmtKind::SetBlock: {
      const auto& set = static_cast<const SetBlockStmt&>(stmt);
      Value value(render_block(set.body, scope));
      if (set.filter) value = apply_filter_chain(*set.filter, std::move(value), scope);
      assign(set.target, value, scope);
      return Flow::Normal;
    }
    case StmtKind::Macro: {
      const auto& macro = static_cast<const MacroStmt&>(stmt);
      auto function = std::make_shared<MacroFunction>(macro, scope.weak_from_this());
      scope.set(macro.name, Value(std::shared_ptr<Function>(std::move(function))));
      return Flow::Normal;
    }
    case StmtKind::CallBlock:
      exec_call_block(static_cast<const CallBlockStmt&>(stmt), scope, out);
      return Flow::Normal;
    case StmtKind::FilterBlock: {
      const auto& block = static_cast<const FilterBlockStmt&>(stmt);
      append_output(
          out, apply_filter_chain(*block.filter, Value(render_block(block.body, scope)), scope));
      return Flow::Normal;
    }
    case StmtKind::With: {
      const auto& with = static_cast<const WithStmt&>(stmt);
      auto inner = std::make_shared<Scope>(&scope);
      for (const auto& [name, value] : with.assignments) inner->set(name, eval(*value, scope));
      return exec_body(with.body, *inner, out);
    }
    case StmtKind::Scope: {
      auto inner = std::make_shared<Scope>(&scope);
      exec_body(static_cast<const ScopeStmt&>(stmt).body, *inner, out);
      return Flow::Normal;
    }
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_for(const ForStmt& stmt, Scope& scope, std::string& out) {
  std::vector<Value> items = iterate(eval(*stmt.iterable, scope));
  charge(items.size());
  if (stmt.filter) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto filter_scope = std::make_shared<Scope>(&scope);
      assign(stmt.target, item, *filter_scope);
      if (truthy(eval(*stmt.filter, *filter_scope))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  // Like Jinja2, the else block also runs when no iteration reached the end of the body
  // (every one ended in break or continue).
  bool completed = false;
  for (size_t i = 0; i < items.size(); ++i) {
    auto inner = std::make_shared<Scope>(&scope);
    assign(stmt.target, items[i], *inner);
    inner->set("loop", make_loop(items, i));
    Flow flow = exec_body(stmt.body, *inner, out);
    completed = completed || flow == Flow::Normal;
    if (flow == Flow::Break) break;
  }
  if (!completed) {
    auto inner = std::make_shared<Scope>(&scope);
    exec_body(stmt.otherwise, *inner, out);
  }
  return Flow::Normal;
}

void Interpreter::exec_call_block(const CallBlockStmt& stmt, Scope& scope, std::string& out) {
  const auto& call = static_cast<const CallExpr&>(*stmt.call);
  Value callee = eval(*call.callee, scope);
  CallArgs args = eval_args(call.args, scope);
  auto caller = std::make_shared<MacroFunction>(stmt, scope.weak_from_this());
  args.keywords.emplace_back("caller", Value(std::shared_ptr<Function>(std::move(caller))));
  append_output(out, this->call(callee, std::move(args)));
}

void Interpreter::assign(const AssignTarget& target, const Value& value, Scope& scope) {
  if (!target.attribute.empty()) {
    const Value* space = scope.lookup(target.names.front());
    if (!space || !space->is_object() || space->as_object().kind != ObjectKind::Namespace) {
      runtime_fail("cannot assign attribute '{}' on non-namespace object '{}'", target.attribute,
                   target.names.front());
    }
    track_mutation(*space);
    space->as_object().set(target.attribute, value);
    return;
  }
  if (!target.unpack) {
    scope.set(target.names.front(), value);
    return;
  }
  std::vector<Value> items = iterate(value);
  if (items.size() > target.names.size()) {
    runtime_fail("too many values to unpack (expected {})", target.names.size());
  }
  if (items.size() < target.names.size()) {
    runtime_fail("not enough values to unpack (expected {}, got {})", target.names.size(),
                 items.size());
  }
  for (size_t i = 0; i < items.size(); ++i) scope.set(target.names[i], std::move(items[i]));
}

std::string Interpreter::render_block(const Body& body, Scope& scope) {
  auto inner = std::make_shared<Scope>(&scope);
  std::string out;
  exec_body(body, *inner, out);
  return out;
}

Value Interpreter::apply_filter_chain(const Expr& filter, Value input, Scope& scope) {
  Value saved = std::exchange(block_input_, std::move(input));
  Value result = eval(filter, scope);
  block_input_ = std::move(saved);
  return result;
}

void Interpreter::append_output(std::string& out, const Value& value) {
  if (value.is_string()) {
    check_size(out.size() + value.as_string().size());
    charge(value.as_string().size() / 64);
    out += value.as_string();
    return;
  }
  std::string text = to_str(value);
  check_size(out.size() + text.size());
  charge(text.size() / 64);
  out += text;
}

}  // namespace flow2::chat
