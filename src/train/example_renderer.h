// A validated dataset line to tokens and a label mask: chat formats through the model's chat
// template, {"text"} as is. The mask of an assistant turn is found by rendering the
// conversation up to that turn and tokenizing it, so it is aligned with the tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "flow2/chat.h"
#include "flow2/tokenizer.h"
#include "train/dataset_format.h"

namespace flow2 {

struct RenderedExample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> label_mask;
  // Turn boundaries that fell inside a token (the prefix's tokens were not a prefix of the
  // conversation's); the straddling token is trained on.
  int64_t boundary_merges = 0;
};

class ExampleRenderer {
 public:
  // `eos_ids`: the first is appended when the last assistant turn (or, for text, the last
  // token) has no end-of-turn id; empty means never.
  ExampleRenderer(const Tokenizer& tokenizer, const ChatFormatter& formatter, bool mask_prompt,
                  std::vector<int32_t> eos_ids);

  // Throws flow2::Error when the template cannot render the record or renders conversation
  // prefixes inconsistently (the message names neither file nor line).
  RenderedExample render(const Record& record) const;

 private:
  RenderedExample render_text(const Record& record) const;
  RenderedExample render_chat(const Record& record) const;
  bool is_eos(int32_t id) const;

  const Tokenizer& tokenizer_;
  const ChatFormatter& formatter_;
  bool mask_prompt_;
  std::vector<int32_t> eos_ids_;
};

}  // namespace flow2
