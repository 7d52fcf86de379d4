#include "train/example_renderer.h"

#include <algorithm>

#include "flow2/error.h"

namespace flow2 {
namespace {

// Where the text `prefix` ends in `tokens` (the tokens of a text that starts with `prefix`).
// When the prefix's own tokens are not a prefix of `tokens` (BPE merged across the boundary),
// the straddling token is counted on the trained side: `round_up` puts it before the boundary
// (the end of a turn), otherwise after it (the start of one).
size_t token_boundary(const Tokenizer& tokenizer, const std::string& prefix,
                      const std::vector<int32_t>& tokens, bool round_up, int64_t& merges) {
  std::vector<int32_t> own = tokenizer.encode(prefix);
  auto [own_end, tokens_end] = std::mismatch(own.begin(), own.end(), tokens.begin(), tokens.end());
  size_t common = static_cast<size_t>(own_end - own.begin());
  if (common == own.size()) return common;
  ++merges;
  return round_up ? std::min(common + 1, tokens.size()) : common;
}

}  // namespace

ExampleRenderer::ExampleRenderer(const Tokenizer& tokenizer, const ChatFormatter& formatter,
                                 bool mask_prompt, std::vector<int32_t> eos_ids)
    : tokenizer_(tokenizer),
      formatter_(formatter),
      mask_prompt_(mask_prompt),
      eos_ids_(std::move(eos_ids)) {}

bool ExampleRenderer::is_eos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

RenderedExample ExampleRenderer::render(const Record& record) const {
  return record.format == DatasetFormat::Text ? render_text(record) : render_chat(record);
}

RenderedExample ExampleRenderer::render_text(const Record& record) const {
  RenderedExample example;
  // As a pretraining document: with the post-processor's special tokens (a BOS, say).
  example.tokens = tokenizer_.encode(record.text, true);
  if (!eos_ids_.empty() && (example.tokens.empty() || example.tokens.back() != eos_ids_[0])) {
    example.tokens.push_back(eos_ids_[0]);
  }
  example.label_mask.assign(example.tokens.size(), 1);
  return example;
}

RenderedExample ExampleRenderer::render_chat(const Record& record) const {
  const std::vector<ChatMessage>& messages = record.messages;
  const nlohmann::json tools = record.tools.value_or(nullptr);
  std::string full = formatter_.render(messages, false, tools);
  RenderedExample example;
  example.tokens = tokenizer_.encode(full);
  example.label_mask.assign(example.tokens.size(), mask_prompt_ ? 0 : 1);

  // Each assistant turn spans from the end of the conversation before it (with the generation
  // prompt) to the end of the conversation through it.
  size_t last_start = 0, last_end = 0;
  bool last_is_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    last_is_assistant = messages[i].role == "assistant";
    if (!last_is_assistant) continue;
    std::vector<ChatMessage> before(messages.begin(), messages.begin() + i);
    std::vector<ChatMessage> through(messages.begin(), messages.begin() + i + 1);
    std::string start_text = formatter_.render(before, true, tools);
    std::string end_text =
        i + 1 == messages.size() ? full : formatter_.render(through, false, tools);
    if (!end_text.starts_with(start_text) || !full.starts_with(end_text)) {
      fail(
          "the chat template does not render the conversation up to message {} as a prefix of "
          "the whole conversation, so the assistant's tokens cannot be located (load with "
          "mask_prompt off to train on every token)",
          i);
    }
    last_start =
        token_boundary(tokenizer_, start_text, example.tokens, false, example.boundary_merges);
    last_end = end_text.size() == full.size() ? example.tokens.size()
                                              : token_boundary(tokenizer_, end_text, example.tokens,
                                                               true, example.boundary_merges);
    last_end = std::max(last_end, last_start);
    if (mask_prompt_) {
      std::fill(example.label_mask.begin() + static_cast<ptrdiff_t>(last_start),
                example.label_mask.begin() + static_cast<ptrdiff_t>(last_end), 1);
    }
  }
  // A template that does not end the assistant's turn with an end-of-turn token gets one.
  if (last_is_assistant && !eos_ids_.empty()) {
    bool ended = std::any_of(example.tokens.begin() + static_cast<ptrdiff_t>(last_start),
                             example.tokens.end(), [&](int32_t id) { return is_eos(id); });
    if (!ended) {
      example.tokens.push_back(eos_ids_[0]);
      example.label_mask.push_back(1);
    }
  }
  return example;
}

}  // namespace flow2
