// The tokenizer and chat settings that a GGUF file carries in its metadata
// (tokenizer.ggml.*, tokenizer.chat_template).
#pragma once

#include "flow2/gguf.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"

namespace flow2 {

// Byte-level BPE vocabularies (tokenizer.ggml.model "gpt2") with the pre-tokenizer that
// tokenizer.ggml.pre names, and SentencePiece BPE vocabularies ("llama": tokens, scores, token
// types, byte fallback, add_space_prefix) encoding as llama.cpp does. Other vocabulary models,
// missing keys and arrays of the wrong type or length are errors naming the file and the key.
Tokenizer tokenizer_from_gguf(const GgufFile& file);
TokenizerConfig tokenizer_config_from_gguf(const GgufFile& file);

}  // namespace flow2
