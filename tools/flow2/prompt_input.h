// Where a command's input tokens come from: explicit ids, text, or a text file (encoded with
// the model's tokenizer.json).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flow2/tokenizer.h"

namespace flow2::cli {

struct PromptInput {
  std::string ids;   // "1,2,3"
  std::string text;  // --prompt / --text
  std::string file;  // --file
  CLI::Option* ids_option = nullptr;
  CLI::Option* text_option = nullptr;
  CLI::Option* file_option = nullptr;

  bool has_text() const { return text_option->count() + file_option->count() > 0; }
  // The text of --prompt or --file.
  std::string read_text() const;
  // The token ids: parsed from `ids`, or the text encoded with `tokenizer` (with the
  // post-processor's special tokens when `add_special_tokens`).
  std::vector<int32_t> token_ids(const Tokenizer* tokenizer, bool add_special_tokens) const;
};

// Registers --<ids_flag> IDS, --<text_flag> TEXT and --file PATH (exactly one is required).
void add_prompt_options(CLI::App& command, PromptInput& input, const std::string& ids_flag,
                        const std::string& text_flag);

}  // namespace flow2::cli
