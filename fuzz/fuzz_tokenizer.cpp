// libFuzzer target: arbitrary bytes as tokenizer.json must load or raise flow2::Error; a loaded
// tokenizer must encode and decode arbitrary text (the input's tail) without crashing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "flow2/error.h"
#include "flow2/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first NUL byte separates the tokenizer.json from the text to encode.
  size_t split = input.find('\0');
  std::string_view json = input.substr(0, split);
  std::string_view text = split == std::string_view::npos ? "Hello world" : input.substr(split + 1);
  try {
    auto tokenizer = flow2::Tokenizer::from_json_text(json, "fuzz-input");
    auto ids = tokenizer.encode(text, true);
    (void)tokenizer.decode(ids);
    (void)tokenizer.encode_with_tokens(text);
    flow2::StreamingDecoder stream(tokenizer);
    for (int32_t id : ids) (void)stream.push(id);
    (void)stream.finish();
  } catch (const flow2::Error&) {
  }
  return 0;
}
