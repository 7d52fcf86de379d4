// What generate and chat share: sampling flags, stop conditions, and a text stream that prints
// tokens as they arrive and ends at stop strings.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "flow2/generate.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"

namespace flow2::cli {

struct GenerationFlags {
  int64_t max_tokens = 256;
  SamplingOptions sampling;
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
};

void add_generation_flags(CLI::App& command, GenerationFlags& flags);

// Options for one generation: the flags plus the model's end ids (eos from the config and the
// tokenizer's end-of-turn token) unless --ignore-eos.
GenerationOptions generation_options(const GenerationFlags& flags, const ModelConfig& config,
                                     const Tokenizer* tokenizer,
                                     const TokenizerConfig& tokenizer_config);

// Decodes tokens into text as they arrive, printing to `out` (if any) all text that can no
// longer turn into a stop string; push() returns false once a stop string is complete. The text
// never includes the stop string or special tokens.
class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings, std::FILE* out);
  bool push(int32_t id);
  void finish();
  const std::string& text() const { return text_; }

 private:
  void emit(size_t end);
  StreamingDecoder decoder_;
  std::vector<std::string> stops_;
  std::FILE* out_;
  std::string text_;    // everything decoded, cut at a stop string once one is found
  size_t printed_ = 0;  // bytes of text_ already written to out_
  bool stopped_ = false;
};

// The process's peak resident memory in bytes.
int64_t peak_rss_bytes();

}  // namespace flow2::cli
