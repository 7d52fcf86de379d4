// Chat templates: every syntax error, unsupported construct and runtime failure is a flow2::Error
// that names the template and its line; hostile templates hit limits instead of the stack.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat_template_support.h"

namespace flow2 {
namespace {

using nlohmann::ordered_json;
using testing::render_error;

::testing::AssertionResult has_error(const std::string& source, const std::string& expected,
                                     const ordered_json& context = {}) {
  std::string message = render_error(source, context);
  if (message.find(expected) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "error '" << message << "' does not contain '" << expected << "'";
}

TEST(ChatTemplateErrors, UnterminatedTags) {
  EXPECT_TRUE(has_error("line one\n{{ message", "chat_template line 2: unclosed '{{' tag"));
  EXPECT_TRUE(has_error("a\nb\n{% if x", "chat_template line 3: unclosed '{%' tag"));
  EXPECT_TRUE(has_error("a\n{# comment", "line 2: missing end of comment tag"));
  EXPECT_TRUE(has_error("{{ 'text }}", "line 1: unterminated string literal"));
  EXPECT_TRUE(has_error("\n\n{% raw %}abc", "line 3: missing '{% endraw %}'"));
  EXPECT_TRUE(has_error("{{ [1, 2 }}", "line 1: unexpected '}', expected ']'"));
  // The name given to parse() starts the message.
  try {
    ChatTemplate::parse("ok\n{{ x", "tokenizer_config.json:chat_template");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tokenizer_config.json:chat_template line 2:"),
              std::string::npos);
  }
}

TEST(ChatTemplateErrors, SyntaxErrors) {
  EXPECT_TRUE(has_error("{{ 1 + }}", "line 1: expected an expression, got end of print statement"));
  EXPECT_TRUE(has_error("x\n{{ a b }}", "line 2: expected end of print statement, got 'b'"));
  EXPECT_TRUE(has_error("{% if x %}{% endif extra %}", "line 1: expected end of statement block"));
  EXPECT_TRUE(has_error("{% macro f(a=1, b) %}{% endmacro %}", "non-default argument"));
  EXPECT_TRUE(has_error("{{ f(a=1, 2) }}", "positional argument follows keyword argument"));
  EXPECT_TRUE(has_error("{{ 'a' @ 'b' }}", "line 1: unexpected character '@'"));
  EXPECT_TRUE(has_error(std::string("{{ 'a\xff' }}"), "not valid UTF-8"));
}

TEST(ChatTemplateErrors, UnknownAndUnsupportedStatements) {
  EXPECT_TRUE(
      has_error("a\n{% frobnicate %}", "chat_template line 2: unknown statement 'frobnicate'"));
  EXPECT_TRUE(has_error("\n{% include 'other.j2' %}", "line 2: '{% include %}' is not supported"));
  EXPECT_TRUE(has_error("{% extends 'base' %}", "line 1: '{% extends %}' is not supported"));
  EXPECT_TRUE(has_error("{% for x in y recursive %}{% endfor %}", "recursive for loops"));
  EXPECT_TRUE(has_error("\n\n{% break %}", "line 3: '{% break %}' outside of a for loop"));
}

TEST(ChatTemplateErrors, MismatchedBlocks) {
  EXPECT_TRUE(has_error("{% for x in y %}\n{% endif %}",
                        "line 2: unexpected '{% endif %}': the innermost open block is "
                        "'{% for %}' from line 1"));
  EXPECT_TRUE(has_error("{% if a %}\nx\n{% endfor %}", "line 3: unexpected '{% endfor %}'"));
  EXPECT_TRUE(has_error("x\n{% endif %}", "line 2: unexpected '{% endif %}': no block is open"));
  EXPECT_TRUE(has_error("a\n{% for x in y %}\n{% if x %}\n{% endfor %}", "line 4: unexpected"));
  EXPECT_TRUE(has_error("a\n{% if x %}\nno end", "line 2: '{% if %}' is never closed"));
  EXPECT_TRUE(has_error("{% macro m() %}", "line 1: '{% macro %}' is never closed"));
}

TEST(ChatTemplateErrors, UnknownFiltersAndTests) {
  // Outside if-blocks they fail when the template is parsed, as Jinja2 compiles them...
  EXPECT_TRUE(has_error("a\nb\n{{ x|nosuch }}", "chat_template line 3: unknown filter 'nosuch'"));
  EXPECT_TRUE(has_error("{% if x is nosuch %}{% endif %}", "line 1: unknown test 'nosuch'"));
  try {
    ChatTemplate::parse("{% for x in y %}{{ x|nosuch }}{% endfor %}");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("unknown filter 'nosuch'"), std::string::npos);
  }
  // ...and inside them only when they run.
  EXPECT_EQ(render_error("{% if false %}{{ x|nosuch }}{% endif %}"), "");
  EXPECT_TRUE(has_error("{% if true %}\n{{ x|nosuch }}{% endif %}", "line 2: unknown filter"));
  // Jinja2 filters this interpreter leaves out fail clearly when called.
  EXPECT_TRUE(has_error("{{ 'a b'|truncate(1) }}", "line 1: filter 'truncate' is not supported"));
}

TEST(ChatTemplateErrors, RaiseException) {
  const std::string source =
      "{% for m in messages %}\n"
      "{% if m.role not in ['user', 'assistant'] %}\n"
      "{{ raise_exception('Unsupported role: ' + m.role) }}\n"
      "{% endif %}\n"
      "{% endfor %}";
  ordered_json context = {{"messages", {{{"role", "user"}}, {{"role", "tool"}}}}};
  EXPECT_EQ(render_error(source, context), "chat_template line 3: Unsupported role: tool");
  // Line numbers count the lines of comments and multi-line strings too.
  EXPECT_TRUE(has_error("{# one\ntwo #}{{ 'a\nb' }}\n{{ raise_exception('x') }}", "line 4: x"));
}

TEST(ChatTemplateErrors, RuntimeErrors) {
  EXPECT_TRUE(has_error("\n{{ 1 / 0 }}", "line 2: division by zero"));
  EXPECT_TRUE(has_error("{{ 'a' + 1 }}", "can only concatenate str"));
  EXPECT_TRUE(has_error("{{ missing() }}", "'missing' is undefined"));
  EXPECT_TRUE(has_error("{{ missing + 1 }}", "'missing' is undefined"));
  EXPECT_TRUE(has_error("{{ {}.nosuch() }}", "'dict object' has no attribute 'nosuch'"));
  EXPECT_TRUE(has_error("{% set x = 1 %}{% set x.a = 2 %}", "non-namespace object 'x'"));
  EXPECT_TRUE(has_error("{% for a, b in [[1, 2, 3]] %}{% endfor %}", "too many values to unpack"));
  EXPECT_TRUE(has_error("{{ none|length }}", "object of type 'NoneType' has no len()"));
  EXPECT_TRUE(
      has_error("{{ [1]|map('upper')|list|tojson }}{{ x|tojson }}", "not JSON serializable"));
  EXPECT_TRUE(has_error("{{ [1, 2]|select('odd') }}", "cannot print a generator"));
  // transformers' sandbox refuses methods that modify containers (list.append excepted).
  EXPECT_TRUE(has_error("{{ [1].pop() }}", "access to attribute 'pop' of 'list' object is unsafe"));
  EXPECT_TRUE(has_error("{{ 'abc'.encode() }}", "str.encode() is not supported"));
  EXPECT_TRUE(has_error("{{ 9223372036854775807 + 1 }}", "integer overflow"));
  EXPECT_TRUE(has_error("{{ range(1000000)|length }}", "range too big"));
  // A value that contains itself works, but cannot be printed.
  const std::string cycle = "{% set ns = namespace() %}{% set ns.me = [ns] %}";
  EXPECT_EQ(testing::render(cycle + "{{ ns.me[0].me[0] is sameas ns }}"), "True");
  EXPECT_TRUE(has_error(cycle + "{{ ns }}", "nested more than"));
}

TEST(ChatTemplateErrors, BadContext) {
  try {
    ChatTemplate::parse("x").render(nlohmann::json::array());
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("must be a JSON object"), std::string::npos);
  }
  nlohmann::json context = {{"text", std::string("bad \xff byte")}};
  try {
    ChatTemplate::parse("{{ text }}").render(context);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("context variable 'text'"), std::string::npos);
  }
}

TEST(ChatTemplateErrors, DeepNestingFailsCleanly) {
  std::string parentheses = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_TRUE(has_error(parentheses, "nested more than"));
  std::string chain = "{{ 1";
  for (int i = 0; i < 20000; ++i) chain += " + 1";
  EXPECT_TRUE(has_error(chain + " }}", "nested more than"));
  std::string filters = "{{ 'x'";
  for (int i = 0; i < 20000; ++i) filters += "|trim";
  EXPECT_TRUE(has_error(filters + " }}", "nested more than"));
  std::string blocks;
  for (int i = 0; i < 5000; ++i) blocks += "{% if true %}";
  EXPECT_TRUE(has_error(blocks, "nested more than"));
  EXPECT_TRUE(has_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nested more than"));
  EXPECT_TRUE(has_error("{{ " + std::string(3000, '-') + "1 }}", "nested more than"));
}

TEST(ChatTemplateErrors, Limits) {
  ChatTemplate loops = ChatTemplate::parse(
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  loops.set_limits({.max_output_bytes = size_t{1} << 20, .max_steps = 200000});
  EXPECT_THROW(loops.render(nlohmann::json::object()), Error);
  ChatTemplate output = ChatTemplate::parse("{% for i in range(1000) %}0123456789{% endfor %}");
  output.set_limits({.max_output_bytes = 5000, .max_steps = 1000000});
  try {
    output.render(nlohmann::json::object());
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("max_output_bytes"), std::string::npos);
  }
  // Doubling a string in a loop hits the size limit long before memory runs out.
  ChatTemplate doubling = ChatTemplate::parse(
      "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
      "{% endfor %}");
  doubling.set_limits({.max_output_bytes = 1 << 20, .max_steps = 1000000});
  EXPECT_THROW(doubling.render(nlohmann::json::object()), Error);
  // A value nested deeper than the interpreter recurses is refused, and freed without recursion.
  EXPECT_NE(render_error("{% set ns = namespace(v=[]) %}{% for i in range(50000) %}"
                         "{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v|length }}{{ ns.v }}"),
            "");
}

}  // namespace
}  // namespace flow2
