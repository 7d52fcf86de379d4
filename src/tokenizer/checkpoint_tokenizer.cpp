#include "flow2/checkpoint_tokenizer.h"

#include "flow2/gguf_vocabulary.h"

namespace flow2 {

std::optional<Tokenizer> checkpoint_tokenizer(const Checkpoint& checkpoint) {
  if (checkpoint.gguf) return tokenizer_from_gguf(*checkpoint.gguf);
  auto path = checkpoint.path / "tokenizer.json";
  if (!std::filesystem::exists(path)) return std::nullopt;
  return Tokenizer::from_file(path);
}

TokenizerConfig checkpoint_tokenizer_config(const Checkpoint& checkpoint) {
  if (checkpoint.gguf) return tokenizer_config_from_gguf(*checkpoint.gguf);
  return load_tokenizer_config(checkpoint.path);
}

Tokenizer load_tokenizer(const std::filesystem::path& model_or_file) {
  if (model_or_file.extension() == ".gguf") {
    return tokenizer_from_gguf(GgufFile::open(model_or_file));
  }
  return Tokenizer::from_file(tokenizer_json_path(model_or_file));
}

}  // namespace flow2
