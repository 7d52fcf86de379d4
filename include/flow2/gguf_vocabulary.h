// The tokenizer and chat settings that a GGUF file carries in its metadata
// (tokenizer.ggml.*, tokenizer.chat_template).
#pragma once

#include "flow2/gguf.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"

namespace flow2 {

// Byte-level BPE vocabularies (tokenizer.ggml.model "gpt2") with the pre-tokenizer that
// tokenizer.ggml.pre names. Other vocabulary models are errors naming the file.
Tokenizer tokenizer_from_gguf(const GgufFile& file);
TokenizerConfig tokenizer_config_from_gguf(const GgufFile& file);

}  // namespace flow2
