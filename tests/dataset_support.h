// Helpers for the dataset tests: the tiny-llama tokenizer and chat template, and JSONL files
// written into a temporary directory.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "flow2/chat.h"
#include "flow2/dataset.h"
#include "flow2/error.h"
#include "flow2/model_config.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"
#include "test_support.h"

namespace flow2::testing {

// tiny-llama: byte-level BPE of 320 ids, ChatML template, eos <|im_end|> (id 3).
struct TinyChatModel {
  TinyChatModel()
      : config(load_model_config(model_path("tiny-llama"))),
        tokenizer_config(load_tokenizer_config(model_path("tiny-llama"))),
        tokenizer(Tokenizer::from_file(model_path("tiny-llama") / "tokenizer.json")),
        formatter(tokenizer_config, config, tokenizer) {}

  DatasetOptions options() const {
    DatasetOptions options;
    options.eos_ids = end_of_turn_ids(config, tokenizer_config, tokenizer);
    return options;
  }
  Dataset load(const std::filesystem::path& path, const DatasetOptions& options) const {
    return load_dataset(path, tokenizer, formatter, options);
  }
  Dataset load(const std::filesystem::path& path) const { return load(path, options()); }

  ModelConfig config;
  TokenizerConfig tokenizer_config;
  Tokenizer tokenizer;
  ChatFormatter formatter;
};

inline std::string jsonl(const std::vector<nlohmann::json>& rows) {
  std::string text;
  for (const auto& row : rows) text += row.dump() + "\n";
  return text;
}

}  // namespace flow2::testing
