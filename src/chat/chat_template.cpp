#include "flow2/chat_template.h"

#include <fmt/format.h>

#include "chat/evaluator.h"
#include "chat/json_value.h"
#include "chat/parser.h"
#include "chat/runtime_error.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

template <typename Json>
std::string render_json(const chat::TemplateAst& ast, const std::string& name,
                        const ChatTemplateLimits& limits, const Json& context) {
  if (!context.is_object()) {
    fail("{}: the render context must be a JSON object, got {}", name, context.type_name());
  }
  std::vector<std::pair<std::string, chat::Value>> variables;
  for (auto it = context.begin(); it != context.end(); ++it) {
    try {
      variables.emplace_back(it.key(), chat::value_from_json(it.value()));
    } catch (const chat::RuntimeError& error) {
      fail("{}: context variable '{}': {}", name, it.key(), error.what());
    }
  }
  try {
    chat::Interpreter interpreter(limits);
    return interpreter.render(ast, std::move(variables));
  } catch (const chat::RuntimeError& error) {
    if (error.line > 0) fail("{} line {}: {}", name, error.line, error.what());
    fail("{}: {}", name, error.what());
  }
}

}  // namespace

ChatTemplate::ChatTemplate(std::shared_ptr<const chat::TemplateAst> ast, std::string name)
    : ast_(std::move(ast)), name_(std::move(name)) {}

ChatTemplate ChatTemplate::parse(std::string_view source, std::string name) {
  std::shared_ptr<const chat::TemplateAst> ast = chat::parse_template(source, name);
  return ChatTemplate(std::move(ast), std::move(name));
}

std::string ChatTemplate::render(const nlohmann::json& context) const {
  return render_json(*ast_, name_, limits_, context);
}

std::string ChatTemplate::render_ordered(const nlohmann::ordered_json& context) const {
  return render_json(*ast_, name_, limits_, context);
}

}  // namespace flow2
