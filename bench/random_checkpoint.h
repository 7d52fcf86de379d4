// Writes a Llama-architecture checkpoint with random weights in Hugging Face layout, so that
// speed can be measured at real model shapes without downloading weights.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace flow2::bench {

struct LlamaShape {
  std::string name;
  int64_t vocab_size;
  int64_t hidden_size;
  int64_t intermediate_size;
  int64_t num_layers;
  int64_t num_heads;
  int64_t num_kv_heads;
  bool tie_word_embeddings;
};

// SmolLM2-135M and Llama 3.2 1B; nullptr-free lookup, throws for an unknown name.
LlamaShape llama_shape(const std::string& name);

void write_random_llama(const std::filesystem::path& directory, const LlamaShape& shape,
                        uint64_t seed);

}  // namespace flow2::bench
