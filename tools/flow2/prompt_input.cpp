#include "prompt_input.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "flow2/error.h"
#include "flow2/tokenizer_config.h"

namespace flow2::cli {

void add_prompt_options(CLI::App& command, PromptInput& input, const std::string& ids_flag,
                        const std::string& text_flag) {
  input.ids_option = command.add_option("--" + ids_flag, input.ids, "Token ids, e.g. 1,2,3");
  input.text_option = command.add_option("--" + text_flag, input.text, "Text");
  input.file_option = command.add_option("--file", input.file, "Read the text from this file");
  input.ids_option->excludes(input.text_option)->excludes(input.file_option);
  input.text_option->excludes(input.file_option);
}

std::string PromptInput::read_text() const {
  if (text_option->count()) return text;
  std::ifstream stream(file, std::ios::binary);
  check(stream.good(), "{}: cannot open", file);
  std::stringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

std::vector<int32_t> PromptInput::token_ids(const Tokenizer* tokenizer,
                                            bool add_special_tokens) const {
  check(ids_option->count() + text_option->count() + file_option->count() == 1,
        "give the input as one of {}, {} or --file", ids_option->get_name(),
        text_option->get_name());
  if (ids_option->count()) return parse_id_list(ids, ids_option->get_name());
  check(tokenizer != nullptr, "text input needs the model's tokenizer.json");
  return tokenizer->encode(read_text(), add_special_tokens);
}

}  // namespace flow2::cli
