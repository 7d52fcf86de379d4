// Chat templates: the reference renders of transformers' apply_chat_template, and Jinja2's
// statements, whitespace control and scoping as its documentation describes them.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "chat_template_support.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::ordered_json;
using testing::render;

// bos_token / eos_token in tokenizer_config.json: a string, or an object with "content".
ordered_json special_token(const ordered_json& config, const std::string& key) {
  if (!config.contains(key)) return nullptr;
  const ordered_json& token = config[key];
  return token.is_object() ? token["content"] : token;
}

struct ReferenceSet {
  std::string expected;  // chat_expected.jsonl
  std::string config;    // the tokenizer_config.json with its chat_template
};

TEST(ChatTemplate, ReferenceRendersMatchTransformers) {
  const ReferenceSet sets[] = {
      {"tokenizers/llama3_1/chat_expected.jsonl", "tokenizers/llama3_1/tokenizer_config.json"},
      {"tokenizers/qwen3/chat_expected.jsonl", "tokenizers/qwen3/tokenizer_config.json"},
      {"tokenizers/tiny/chat_expected.jsonl", "models/tiny-llama/tokenizer_config.json"},
  };
  int rows = 0;
  for (const ReferenceSet& set : sets) {
    ordered_json config = ordered_json::parse(testing::read_file(testing::data_path(set.config)));
    ChatTemplate chat_template = ChatTemplate::parse(config["chat_template"].get<std::string>());
    std::ifstream lines(testing::data_path(set.expected));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty()) continue;
      ordered_json row = ordered_json::parse(line);
      ordered_json context = ordered_json::object();
      for (const auto& [key, value] : row.items()) {
        if (key == "text" || key == "ids") continue;
        context[key == "chat" ? "messages" : key] = value;  // the tiny set names it "chat"
      }
      if (!context.contains("add_generation_prompt")) context["add_generation_prompt"] = false;
      context["bos_token"] = special_token(config, "bos_token");
      context["eos_token"] = special_token(config, "eos_token");
      SCOPED_TRACE(set.expected + ": " + line.substr(0, 120));
      EXPECT_EQ(chat_template.render_ordered(context), row["text"].get<std::string>());
      ++rows;
    }
  }
  EXPECT_GE(rows, 13);
}

// The example of Jinja2's "Whitespace Control" section, rendered with trim_blocks and
// lstrip_blocks: the block lines disappear entirely.
TEST(ChatTemplate, TrimAndLstripBlocks) {
  EXPECT_EQ(render("<div>\n    {% if True %}\n        yay\n    {% endif %}\n</div>"),
            "<div>\n        yay\n</div>");
  // Comments are stripped the same way; variable tags are not.
  EXPECT_EQ(render("a\n  {# note #}\nb"), "a\nb");
  EXPECT_EQ(render("  {{ 'x' }}\n  {{ 'y' }}"), "  x\n  y");
  // lstrip_blocks only removes whitespace that starts the line.
  EXPECT_EQ(render("a {% if true %}b{% endif %} c"), "a b c");
  // trim_blocks removes one newline, not more, and not other whitespace.
  EXPECT_EQ(render("{% if true %}\n\nx{% endif %}"), "\nx");
  EXPECT_EQ(render("{% if true %}  \nx{% endif %}"), "  \nx");
  // A "+" keeps the indentation (lstrip) or the newline (trim).
  EXPECT_EQ(render("<div>\n    {%+ if true %}yay{% endif %}\n</div>"), "<div>\n    yay</div>");
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");
}

TEST(ChatTemplate, MinusStripsWhitespace) {
  // Jinja2's documentation example: the loop prints the items without whitespace.
  EXPECT_EQ(render("{% for item in seq -%}\n    {{ item }}\n{%- endfor %}",
                   {{"seq", {1, 2, 3, 4, 5, 6, 7, 8, 9}}}),
            "123456789");
  EXPECT_EQ(render("a  \n  {{- 'b' -}}  \n  c"), "abc");
  EXPECT_EQ(render("a\n\n{#- comment -#}\n\nb"), "ab");
  EXPECT_EQ(render("x {%- if true %} y {% endif -%} z"), "x y z");
}

TEST(ChatTemplate, NewlinesAndRaw) {
  EXPECT_EQ(render("one trailing newline is dropped\n"), "one trailing newline is dropped");
  EXPECT_EQ(render("only one\n\n"), "only one\n");
  EXPECT_EQ(render("crlf\r\nline\r"), "crlf\nline");
  EXPECT_EQ(render("{% raw %}{{ not a tag }} {% if %}{% endraw %}"), "{{ not a tag }} {% if %}");
  EXPECT_EQ(render("{{ '{{' }}x{{ '}}' }}"), "{{x}}");
  EXPECT_EQ(render("{ a } {x} %} #}"), "{ a } {x} %} #}");
}

TEST(ChatTemplate, PrintsValuesAsPythonStrs) {
  EXPECT_EQ(render("{{ true }} {{ false }} {{ none }} {{ True }} {{ None }}"),
            "True False None True None");
  EXPECT_EQ(render("{{ 42 }} {{ -7 }} {{ 1.0 }} {{ 0.5 }} {{ 1e-5 }} {{ 1e16 }} {{ 2.5e3 }}"),
            "42 -7 1.0 0.5 1e-05 1e+16 2500.0");
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5] }}"), "[1, 'a', None, True, 1.5]");
  EXPECT_EQ(render("{{ {'a': [1, 2], 'b': {'c': none}} }}"), "{'a': [1, 2], 'b': {'c': None}}");
  EXPECT_EQ(render("{{ (1, 2) }} {{ (1,) }} {{ () }}"), "(1, 2) (1,) ()");
  EXPECT_EQ(render(R"({{ ["it's", 'say "hi"', 'tab\there'] }})"),
            R"(["it's", 'say "hi"', 'tab\there'])");
  EXPECT_EQ(render("{{ missing }}|{{ missing.attr }}|{{ missing['key'] }}"), "||");
}

TEST(ChatTemplate, Literals) {
  EXPECT_EQ(render(R"({{ 'a\nb' }}|{{ "q\"uote" }}|{{ '\x41\u00e9' }}|{{ 'it\'s' }})"),
            "a\nb|q\"uote|A\xc3\xa9|it's");
  EXPECT_EQ(render("{{ 'con' 'cat' }} {{ 1_000 }} {{ 0x1f }} {{ 0b101 }} {{ 1.5e2 }}"),
            "concat 1000 31 5 150.0");
}

TEST(ChatTemplate, Operators) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }}"),
            "7 9 3.5 3 -4");
  EXPECT_EQ(render("{{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1 + 0.5 }}"),
            "1 2 1024 0.5 1.5");
  EXPECT_EQ(render("{{ 'ab' ~ 1 ~ none }} {{ 'ab' + 'cd' }} {{ 'x' * 3 }} {{ [1] + [2] }}"),
            "ab1None abcd xxx [1, 2]");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ [1, 2] < [1, 3] }}"),
            "True True True True");
  EXPECT_EQ(render("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [3] }}"),
            "True True True False");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ none or [] }} {{ not 0 }}"), "x y [] True");
  EXPECT_EQ(render("{{ 'a' if true else 'b' }}{{ 'a' if false else 'b' }}[{{ 'a' if false }}]"),
            "ab[]");
  // Jinja2 binds unary minus tighter than ** and evaluates ** left to right.
  EXPECT_EQ(render("{{ -2 ** 2 }} {{ 2 ** 3 ** 2 }}"), "4 64");
}

TEST(ChatTemplate, Truthiness) {
  EXPECT_EQ(render("{% if [] or {} or '' or 0 or 0.0 or none or missing %}t{% else %}f{% endif %}"),
            "f");
  EXPECT_EQ(render("{% if [0] and {'a': 0} and ' ' and -1 and 0.1 %}t{% endif %}"), "t");
  EXPECT_EQ(render("{% if 1 %}a{% elif 2 %}b{% else %}c{% endif %}"
                   "{% if 0 %}a{% elif 2 %}b{% else %}c{% endif %}"
                   "{% if 0 %}a{% elif 0 %}b{% else %}c{% endif %}"),
            "abc");
}

TEST(ChatTemplate, AttributesItemsAndSlices) {
  ordered_json context = {{"d", {{"a", 1}, {"b", {1, 2, 3}}}}, {"s", "hello"}};
  EXPECT_EQ(render("{{ d.a }} {{ d['a'] }} {{ d.b[1] }} {{ d.b.0 }} {{ d.b[-1] }}", context),
            "1 1 2 1 3");
  EXPECT_EQ(render("[{{ d.zz }}][{{ d.b[10] }}][{{ s[99] }}]", context), "[][][]");
  EXPECT_EQ(
      render("{{ d.b[1:] }} {{ d.b[:-1] }} {{ d.b[::2] }} {{ d.b[::-1] }} {{ d.b[5:] }}", context),
      "[2, 3] [1, 2] [1, 3] [3, 2, 1] []");
  EXPECT_EQ(render("{{ s[1:3] }} {{ s[::-1] }} {{ s[-3:] }} {{ s[0] }}", context),
            "el olleh llo h");
  // Strings are indexed by code point, not byte.
  EXPECT_EQ(render("{{ s[1:4] }} {{ s|length }} {{ s[1] }}", {{"s", "h\xc3\xa9llo"}}),
            "\xc3\xa9ll 5 \xc3\xa9");
  // x.name prefers a dict method, x['name'] the key.
  EXPECT_EQ(render("{{ d.items()|list }} {{ {'items': 5}['items'] }}", context),
            "[('a', 1), ('b', [1, 2, 3])] 5");
}

TEST(ChatTemplate, ForLoopVariables) {
  ordered_json context = {{"items", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                   "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} "
                   "{% endfor %}",
                   context),
            "1032TrueFalse3 2121FalseFalse3 3210FalseTrue3 ");
  EXPECT_EQ(render("{% for x in items %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} "
                   "{% endfor %}",
                   context),
            "<a>b a<b>c b<c> ");
  EXPECT_EQ(render("{% for x in items %}{{ loop.cycle('odd', 'even') }} {% endfor %}", context),
            "odd even odd ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] if x is even %}{{ loop.index }}/{{ loop.length }}:"
                   "{{ x }} {% endfor %}"),
            "1/2:2 2/2:4 ");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(render("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}{% for c in 'xyz' %}"
                   "{{ c }}.{% endfor %}"),
            "abx.y.z.");
  EXPECT_EQ(render("{% for i in range(3) %}{% for j in range(2) %}{{ loop.index }}{% endfor %}"
                   "{{ loop.index }} {% endfor %}"),
            "121 122 123 ");
  EXPECT_EQ(render("{% for i in range(10) %}{% if i is odd %}{% continue %}{% endif %}"
                   "{% if i > 6 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "0246");
  EXPECT_EQ(render("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }}"),
            "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
}

TEST(ChatTemplate, Scoping) {
  // An assignment inside a loop body does not leak out, nor into the next iteration.
  EXPECT_EQ(render("{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = i + 10 %}{{ x }},"
                   "{% endfor %}{{ x }}"),
            "010,011,012,0");
  // If blocks are not scopes.
  EXPECT_EQ(render("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");
  // A namespace carries values out of a loop.
  EXPECT_EQ(render("{% set ns = namespace(total=0, seen=false) %}{% for i in [1, 2, 3] %}"
                   "{% set ns.total = ns.total + i %}{% set ns.seen = true %}{% endfor %}"
                   "{{ ns.total }} {{ ns.seen }} {{ ns.other }}"),
            "6 True ");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 3, 4 %}{{ c }}"), "12(3, 4)");
  EXPECT_EQ(render("{% set text %}Hello {{ name }}!{% endset %}[{{ text }}]", {{"name", "Ann"}}),
            "[Hello Ann!]");
  EXPECT_EQ(render("{% set text | upper %}abc{% endset %}{{ text }}"), "ABC");
  EXPECT_EQ(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"), "3[]");
  // Template variables shadow the context; context variables the globals.
  EXPECT_EQ(
      render("{% set messages = messages[1:] %}{{ messages|length }}", {{"messages", {1, 2, 3}}}),
      "2");
  EXPECT_EQ(render("{{ range }}", {{"range", 5}}), "5");
}

TEST(ChatTemplate, Macros) {
  EXPECT_EQ(render("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!"
                   "{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', greeting='Hi') }} "
                   "{{ greet(greeting='Yo', name='Cy') }}"),
            "Hello, Ann! Hi, Bob! Yo, Cy!");
  // A default can use earlier parameters; a missing argument is undefined.
  EXPECT_EQ(render("{% macro f(a, b=a * 2) %}{{ a }},{{ b }}{% endmacro %}{{ f(3) }}"), "3,6");
  EXPECT_EQ(render("{% macro g(a, b) %}{{ a }}[{{ b }}]{% endmacro %}{{ g(1) }}"), "1[]");
  EXPECT_EQ(render("{% macro f() %}{{ varargs }} {{ kwargs }}{% endmacro %}{{ f(1, 2, x=3) }}"),
            "(1, 2) {'x': 3}");
  EXPECT_EQ(render("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
                   "{% call wrap('b') %}bold{% endcall %}"),
            "<b>bold</b>");
  EXPECT_EQ(render("{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}"
                   "{% endmacro %}{% call(x) each([1, 2]) %}[{{ x }}]{% endcall %}"),
            "[1][2]");
  // Macros see the template's variables as they are when called, and can recurse.
  EXPECT_EQ(render("{% set x = 1 %}{% macro show() %}{{ x }}{% endmacro %}{% set x = 2 %}"
                   "{{ show() }}"),
            "2");
  EXPECT_EQ(render("{% macro down(n) %}{{ n }}{% if n > 0 %}{{ down(n - 1) }}{% endif %}"
                   "{% endmacro %}{{ down(3) }}"),
            "3210");
}

TEST(ChatTemplate, FilterGenerationAndDoBlocks) {
  EXPECT_EQ(render("{% filter upper %}abc {{ 'def' }}{% endfilter %}"), "ABC DEF");
  EXPECT_EQ(render("{% filter trim|upper %}  x  {% endfilter %}"), "X");
  // transformers' {% generation %} marks assistant text; it renders its body.
  EXPECT_EQ(render("<{% generation %}reply {{ 1 + 1 }}{% endgeneration %}>"), "<reply 2>");
  EXPECT_EQ(render("{% set items = [] %}{% do items.append(1) %}{% set _ = items.append(2) %}"
                   "{{ items }}"),
            "[1, 2]");
}

TEST(ChatTemplate, Globals) {
  EXPECT_EQ(render("{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ namespace(a=1).a }}"),
            "{'a': 1, 'b': 2} {'x': 1} 1");
  // strftime_now formats the current local time.
  std::string year = render("{{ strftime_now('%Y') }}");
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(year, "2024");
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y')|length }}"), "11");
}

TEST(ChatTemplate, OrderedContextKeepsKeyOrder) {
  ordered_json tool = {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}, {"days", 2}}}};
  EXPECT_EQ(render("{{ tool|tojson }}", {{"tool", tool}}),
            R"({"name": "get_weather", "arguments": {"city": "Paris", "days": 2}})");
  // nlohmann::json sorts keys, which render() then keeps.
  ChatTemplate chat_template = ChatTemplate::parse("{{ tool|tojson }}");
  nlohmann::json sorted = {{"tool", {{"name", "f"}, {"arguments", 1}}}};
  EXPECT_EQ(chat_template.render(sorted), R"({"arguments": 1, "name": "f"})");
}

}  // namespace
}  // namespace flow2
