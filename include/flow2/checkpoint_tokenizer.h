// The tokenizer and tokenizer settings that come with a checkpoint: tokenizer.json and
// tokenizer_config.json beside the weights, or the vocabulary in a GGUF file's metadata.
#pragma once

#include <filesystem>
#include <optional>

#include "flow2/model.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"

namespace flow2 {

// nullopt when a model directory has no tokenizer.json.
std::optional<Tokenizer> checkpoint_tokenizer(const Checkpoint& checkpoint);
TokenizerConfig checkpoint_tokenizer_config(const Checkpoint& checkpoint);

// A tokenizer from a model directory, a tokenizer.json or a GGUF file.
Tokenizer load_tokenizer(const std::filesystem::path& model_or_file);

}  // namespace flow2
