// Chat templates: an interpreter for the subset of Jinja2 that Hugging Face chat templates use,
// rendering as transformers' apply_chat_template does (trim_blocks and lstrip_blocks on, loop
// controls, the raise_exception and strftime_now globals, transformers' tojson filter).
//
// What it does not implement is reported as flow2::Error naming the template and line, never
// rendered differently. It is more lenient than transformers in three ways: an attribute or
// item of an undefined value is undefined (Jinja2 raises), list.append() works and {% do %} is
// accepted (transformers' sandbox and extension list refuse them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace flow2 {

namespace chat {
struct TemplateAst;
}

// Bounds on one render, so that a hostile template fails with flow2::Error instead of running
// for ever or exhausting memory.
struct ChatTemplateLimits {
  size_t max_output_bytes = size_t{64} << 20;  // the output, and any one string or list built
  uint64_t max_steps = 100'000'000;            // evaluations, loop iterations, bytes built / 256
};

class ChatTemplate {
 public:
  // Parses a template; a syntax error or an unsupported construct throws flow2::Error whose
  // message names `name` and the 1-based template line (e.g. "chat_template line 3: ...").
  static ChatTemplate parse(std::string_view source, std::string name = "chat_template");

  // Renders with `context`, a JSON object (messages, tools, add_generation_prompt, bos_token,
  // eos_token, and any other variables). Runtime errors (raise_exception, calling an unknown
  // filter, ...) also throw flow2::Error naming the line.
  std::string render(const nlohmann::json& context) const;
  // The same with the object keys in the order given: nlohmann::json sorts keys, while Python
  // dicts (and so tojson, items() and dict loops in transformers) keep insertion order.
  std::string render_ordered(const nlohmann::ordered_json& context) const;

  const std::string& name() const { return name_; }
  const ChatTemplateLimits& limits() const { return limits_; }
  void set_limits(const ChatTemplateLimits& limits) { limits_ = limits; }

 private:
  ChatTemplate(std::shared_ptr<const chat::TemplateAst> ast, std::string name);

  std::shared_ptr<const chat::TemplateAst> ast_;
  std::string name_;
  ChatTemplateLimits limits_;
};

}  // namespace flow2
