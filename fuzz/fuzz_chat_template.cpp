// libFuzzer target: arbitrary bytes as a chat template must parse and render against a fixed
// conversation or raise flow2::Error; never crash, overflow the stack, leak or run unbounded.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "flow2/chat_template.h"
#include "flow2/error.h"

namespace {

const nlohmann::ordered_json& conversation() {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi <b>caf\u00e9</b>\n  "},
      {"role": "assistant", "content": "<think>\nhm\n</think>\n\nOK", "tool_calls": [
        {"id": "call_0", "type": "function",
         "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2.5, null, true]}}}]},
      {"role": "tool", "content": "{\"temp\": 21}"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})");
  return context;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view source(reinterpret_cast<const char*>(data), size);
  try {
    flow2::ChatTemplate chat_template = flow2::ChatTemplate::parse(source, "fuzz-input");
    // Small limits keep each input fast; the limits themselves are part of what is tested.
    chat_template.set_limits({.max_output_bytes = size_t{1} << 16, .max_steps = 20000});
    (void)chat_template.render_ordered(conversation());
  } catch (const flow2::Error&) {
  }
  return 0;
}
