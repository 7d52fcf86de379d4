// Chat templates: Jinja2's filters and tests, Python's str/dict/list methods, and transformers'
// tojson, with the results their documentation gives.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "chat_template_support.h"

namespace flow2 {
namespace {

using nlohmann::ordered_json;
using testing::render;

const ordered_json kMessages = {{"messages",
                                 {{{"role", "system"}, {"content", "Be brief."}},
                                  {{"role", "user"}, {"content", "Hi"}},
                                  {{"role", "assistant"}, {"content", "Hello!"}},
                                  {{"role", "user"}, {"content", "Bye"}}}}};

TEST(ChatTemplateFilters, Strings) {
  EXPECT_EQ(render("[{{ '  a b \n'|trim }}][{{ 'xxhixx'|trim('x') }}][{{ 5|trim }}]"),
            "[a b][hi][5]");
  EXPECT_EQ(render("{{ 'hELLo'|lower }} {{ 'hello'|upper }} {{ 'hELLO wORLD'|capitalize }}"),
            "hello HELLO Hello world");
  // Jinja2's title starts words after spaces, '-', and opening brackets, unlike str.title().
  EXPECT_EQ(render("{{ \"it's a-b (c)d\"|title }} {{ \"it's a-b (c)d\".title() }}"),
            "It's A-B (C)d It'S A-B (C)D");
  EXPECT_EQ(render("{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} "
                   "{{ 'abc'|replace('', '-') }}"),
            "bbb bba -a-b-c-");
  EXPECT_EQ(render("{{ 'ab\ncd\n\nef'|indent(2) }}|{{ 'ab\ncd'|indent(2, first=true) }}|"
                   "{{ 'ab\n\ncd'|indent('> ', blank=true) }}"),
            "ab\n  cd\n\n  ef|  ab\n  cd|ab\n> \n> cd");
  EXPECT_EQ(render("[{{ 'x'|center(5) }}] {{ 'one, two_2  three!'|wordcount }}"), "[  x  ] 3");
  EXPECT_EQ(render("{{ 42|string ~ none|string }} {{ '%s is %d'|format('x', 7) }}"),
            "42None x is 7");
  EXPECT_EQ(render("{{ 'h\xc3\xa9llo'|length }} {{ 'abc'|reverse }} {{ 'abc'|first }}"
                   "{{ 'abc'|last }}"),
            "5 cba ac");
}

// Python's case mappings are Unicode's full ones, with the final-sigma rule.
TEST(ChatTemplateFilters, UnicodeCase) {
  EXPECT_EQ(render("{{ 'stra\u00dfe'|upper }} {{ '\u00c9COLE'|lower }} "
                   "{{ '\u039f\u0394\u039f\u03a3'|lower }}"),
            "STRASSE \u00e9cole \u03bf\u03b4\u03bf\u03c2");
  // The Latin Extended-B digraph U+01C6 title-cases to U+01C5.
  EXPECT_EQ(render("{{ '\u01c6a'.title() }} {{ 'Hello'.swapcase() }} {{ 'abc'|upper is upper }}"),
            "\u01c5a hELLO True");
}

TEST(ChatTemplateFilters, Numbers) {
  EXPECT_EQ(render("{{ '42'|int }} {{ ' 7 '|int }} {{ '3.9'|int }} {{ 3.9|int }} {{ 'x'|int }} "
                   "{{ 'x'|int(-1) }} {{ '0x1A'|int(base=16) }} {{ true|int }}"),
            "42 7 3 3 0 -1 26 1");
  EXPECT_EQ(render("{{ '1.5'|float }} {{ 2|float }} {{ 'x'|float }} {{ 'x'|float(1.5) }}"),
            "1.5 2.0 0.0 1.5");
  EXPECT_EQ(render("{{ -3|abs }} {{ (-2.5)|abs }} {{ 4|abs }}"), "3 2.5 4");
  // round() rounds half to even on the exact binary value and returns a float for floats.
  EXPECT_EQ(render("{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 42|round }} "
                   "{{ 3.14159|round(2, 'floor') }} {{ 3.14159|round(1, 'ceil') }}"),
            "2.0 4.0 2.67 42 3.14 3.2");
}

TEST(ChatTemplateFilters, Sequences) {
  EXPECT_EQ(render("{{ [3, 1, 2]|length }} {{ [3, 1, 2]|count }} {{ {'a': 1}|length }} "
                   "{{ missing|length }}"),
            "3 3 1 0");
  EXPECT_EQ(render("{{ [3, 1, 2]|first }} {{ [3, 1, 2]|last }} [{{ []|first }}]"), "3 2 []");
  EXPECT_EQ(render("{{ [1, 2, 3]|join }} {{ [1, 2, 3]|join(', ') }} {{ 'abc'|list }}"),
            "123 1, 2, 3 ['a', 'b', 'c']");
  EXPECT_EQ(
      render(
          "{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} "
          "{{ ['b', 'A', 'a', 'B']|sort }} {{ ['b', 'A', 'a', 'B']|sort(case_sensitive=true) }}"),
      "[1, 2, 3] [3, 2, 1] ['A', 'a', 'b', 'B'] ['A', 'B', 'a', 'b']");
  EXPECT_EQ(render("{{ ['a', 'A', 'b', 'a']|unique|list }} {{ [1, 2, 1]|unique|list }} "
                   "{{ [1, 2, 3]|reverse|list }}"),
            "['a', 'b'] [1, 2] [3, 2, 1]");
  EXPECT_EQ(render("{{ [1, 2, 3]|sum }} {{ [1, 2]|sum(start=10) }} {{ [3, 1, 2]|max }} "
                   "{{ [3, 1, 2]|min }} {{ ['b', 'C', 'a']|max }}"),
            "6 13 3 1 C");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }}"),
            "[('a', 2), ('b', 1)] [('b', 1), ('a', 2)]");
  EXPECT_EQ(render("{{ {'a': 1, 'b': 2}|items|list }} {{ [1, 2, 3, 4, 5]|batch(2)|list }}"),
            "[('a', 1), ('b', 2)] [[1, 2], [3, 4], [5]]");
  EXPECT_EQ(render("{{ missing|default('d') }} {{ ''|default('d') }} {{ ''|d('d', true) }} "
                   "{{ none|default('d') }}"),
            "d  d None");
}

TEST(ChatTemplateFilters, MapSelectReject) {
  EXPECT_EQ(render("{{ messages|map(attribute='role')|join(',') }}", kMessages),
            "system,user,assistant,user");
  EXPECT_EQ(render("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')"
                   "|list }}",
                   kMessages),
            "['Hi', 'Bye']");
  EXPECT_EQ(render("{{ messages|rejectattr('role', '==', 'user')|list|length }}", kMessages), "2");
  EXPECT_EQ(render("{{ messages|selectattr('missing')|list }}", kMessages), "[]");
  EXPECT_EQ(render("{{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('odd')|list }} "
                   "{{ [0, 1, '', 'x']|select|list }} {{ [1, 2, 3]|select('gt', 1)|list }}"),
            "[1, 3] [2, 4] [1, 'x'] [2, 3]");
  EXPECT_EQ(render("{{ ['a', 'b']|map('upper')|list }} {{ [[1], [2, 3]]|map('length')|list }}"),
            "['A', 'B'] [1, 2]");
  EXPECT_EQ(render("{{ [{'a': {'b': 5}}]|map(attribute='a.b')|list }} "
                   "{{ [{}]|map(attribute='x', default=0)|list }}"),
            "[5] [0]");
  // map and select skip a false input, and their results are one-shot iterators: true even
  // when they would yield nothing.
  EXPECT_EQ(render("{{ none|selectattr('type', 'equalto', 'x')|list }} "
                   "{% if []|select('odd') %}iterator{% endif %}"),
            "[] iterator");
}

TEST(ChatTemplateFilters, ToJson) {
  ordered_json context = {
      {"data", {{"b", 1}, {"a", {1, 2.5, "x", nullptr, true}}, {"e", ordered_json::object()}}}};
  EXPECT_EQ(render("{{ data|tojson }}", context),
            R"({"b": 1, "a": [1, 2.5, "x", null, true], "e": {}})");
  EXPECT_EQ(render("{{ data|tojson(indent=2) }}", context),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2.5,\n    \"x\",\n    null,\n    true\n  ],\n"
            "  \"e\": {}\n}");
  EXPECT_EQ(render("{{ data|tojson(sort_keys=true, separators=(',', ':')) }}", context),
            R"({"a":[1,2.5,"x",null,true],"b":1,"e":{}})");
  // transformers' tojson keeps non-ASCII text and does not escape HTML characters.
  EXPECT_EQ(render("{{ 'caf\\u00e9 <b> \"q\" \\\\ \n\\t'|tojson }}"),
            "\"caf\xc3\xa9 <b> \\\"q\\\" \\\\ \\n\\t\"");
  EXPECT_EQ(render(R"({{ 'caf\u00e9'|tojson(ensure_ascii=true) }})"), R"("caf\u00e9")");
  EXPECT_EQ(render("{{ (1, 'a')|tojson }} {{ {1: 'x', none: 'y', false: 'z'}|tojson }}"),
            R"([1, "a"] {"1": "x", "null": "y", "false": "z"})");
  // As in Python, 1 and true are the same dict key.
  EXPECT_EQ(render("{{ {1: 'x', true: 'y'} }}"), "{1: 'y'}");
}

TEST(ChatTemplateTests, Types) {
  EXPECT_EQ(render("{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ n is none }}"
                   "{{ x is none }}",
                   {{"x", 1}, {"n", nullptr}}),
            "TrueFalseTrueTrueFalse");
  EXPECT_EQ(render("{{ 'a' is string }}{{ 1 is string }}{{ 1 is number }}{{ 1.5 is number }}"
                   "{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}"),
            "TrueFalseTrueTrueTrueTrueFalseTrue");
  EXPECT_EQ(render("{{ {} is mapping }}{{ [] is mapping }}{{ [] is sequence }}{{ 'a' is sequence }}"
                   "{{ 1 is sequence }}{{ [] is iterable }}{{ 1 is iterable }}"),
            "TrueFalseTrueTrueFalseTrueFalse");
  EXPECT_EQ(render("{{ true is boolean }}{{ 1 is boolean }}{{ true is true }}{{ 1 is true }}"
                   "{{ false is false }}{{ 0 is false }}"),
            "TrueFalseTrueFalseTrueFalse");
  EXPECT_EQ(render("{{ range is callable }}{{ 1 is callable }}{{ 'upper' is filter }}"
                   "{{ 'odd' is test }}"),
            "TrueFalseTrueTrue");
}

TEST(ChatTemplateTests, Values) {
  EXPECT_EQ(
      render("{{ 3 is odd }}{{ 3 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}"),
      "TrueFalseTrueFalse");
  EXPECT_EQ(render("{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}"
                   "{{ 2 is gt 1 }}{{ 2 is ge 2 }}{{ 2 is le 1 }}{{ 2 is greaterthan 1 }}"),
            "TrueFalseTrueTrueTrueTrueFalseTrue");
  EXPECT_EQ(
      render("{{ 2 is in [1, 2] }}{{ 'x' is in 'abc' }}{{ 'abc' is lower }}{{ 'ABC' is upper }}"),
      "TrueFalseTrueTrue");
  EXPECT_EQ(render("{{ 1 is not none }}{{ none is not none }}{{ not 1 is none }}"),
            "TrueFalseTrue");
}

TEST(ChatTemplateMethods, Strings) {
  EXPECT_EQ(render("{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith(('x', 'lo')) }}"
                   "{{ 'Hello'.startswith('l', 2) }}"),
            "TrueTrueTrue");
  EXPECT_EQ(render("[{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}]"
                   "[{{ '\n\nx\n'.strip('\n') }}][{{ 'abcxa'.strip('ab') }}]"),
            "[x][x  ][  x][x][cx]");
  EXPECT_EQ(render("{{ ' a  b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} "
                   "{{ 'a,b,c'.rsplit(',', 1) }} {{ 'a\nb\r\nc'.splitlines() }}"),
            "['a', 'b'] ['a', 'b', '', 'c'] ['a', 'b c'] ['a,b', 'c'] ['a', 'b', 'c']");
  EXPECT_EQ(render("{{ 'x</think>y'.split('</think>')[-1] }} {{ 'ab'.upper() }}{{ 'AB'.lower() }}"
                   " {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }}"),
            "y ABab Hello World Hello");
  EXPECT_EQ(render("{{ 'aaa'.replace('a', 'b') }} {{ 'aaa'.replace('a', 'b', 1) }} "
                   "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} "
                   "{{ 'hello'.count('l') }} {{ 'hello'.index('e') }}"),
            "bbb baa 2 3 -1 2 1");
  EXPECT_EQ(render("{{ '{} and {}'.format('a', 'b') }} {{ '{0}{1}{0}'.format('x', 'y') }} "
                   "{{ '{name}!'.format(name='Ann') }} {{ '{:>4}|{:.2f}'.format('a', 3.14159) }}"),
            "a and b xyx Ann!    a|3.14");
  EXPECT_EQ(
      render("{{ '{:05.1f}|{:+d}|{:,}|{:#06x}|{:*^7}'.format(3.14159, 5, 1234567, 255, 'mid') }} "
             "{{ '%-4s|%03d|%.2e' % ('ab', 7, 1234.5) }}"),
      "003.1|+5|1,234,567|0x00ff|**mid** ab  |007|1.23e+03");
  EXPECT_EQ(render("{{ '-'.join(['a', 'b']) }} {{ 'a-b-c'.partition('-') }} "
                   "{{ 'abc'.removeprefix('a') }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }}"),
            "a-b ('a', '-', 'b-c') bc True True");
}

TEST(ChatTemplateMethods, DictsAndLists) {
  ordered_json context = {{"d", {{"a", 1}, {"b", 2}}}, {"l", {1, 2, 2}}};
  EXPECT_EQ(render("{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}", context),
            "['a', 'b'] [1, 2] [('a', 1), ('b', 2)]");
  EXPECT_EQ(
      render("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d.items() }}", context),
      "1 None 0 dict_items([('a', 1), ('b', 2)])");
  EXPECT_EQ(render("{{ l.count(2) }} {{ l.index(2) }} {{ l.copy() }}", context), "2 1 [1, 2, 2]");
  EXPECT_EQ(render("{% set out = [] %}{% for x in l %}{% set _ = out.append(x * 10) %}{% endfor %}"
                   "{{ out }}",
                   context),
            "[10, 20, 20]");
}

}  // namespace
}  // namespace flow2
