// Hugging Face tokenizer.json, the whole pipeline: added tokens, normalizer, pre-tokenizer,
// BPE model, post-processor and decoder, producing exactly the ids of the `tokenizers` library.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace simdjson {
struct padded_string;
}

namespace flow2 {

// Ids with the text each stands for, as tokenizers' Encoding.tokens: vocabulary strings, and
// for added tokens the matched text (including whitespace that lstrip/rstrip absorbed).
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
};

class Tokenizer {
 public:
  // Reads a tokenizer.json; malformed files and unknown component types are errors naming the
  // file and the component.
  static Tokenizer from_file(const std::filesystem::path& path);
  static Tokenizer from_json_text(std::string_view text, const std::string& source);
  // Builds a tokenizer from tokenizer.json's parts: `sections` holds added_tokens, normalizer,
  // pre_tokenizer, post_processor and decoder; the BPE model is `model_options` (the "model"
  // object without vocab and merges), `vocab` and `merges` (in rank order, or ranked by
  // `merge_ranks` when given: equal ranks apply leftmost first).
  static Tokenizer from_parts(
      const nlohmann::json& sections, const nlohmann::json& model_options,
      std::vector<std::pair<std::string_view, int64_t>> vocab,
      const std::vector<std::pair<std::string_view, std::string_view>>& merges,
      const std::string& source, std::span<const int32_t> merge_ranks = {});
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // `add_special_tokens` applies the post-processor (e.g. a BOS id in front).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  Encoding encode_with_tokens(std::string_view text, bool add_special_tokens = false) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // The vocabulary strings of `ids` (as tokenizers' Encoding.tokens).
  std::vector<std::string> tokens(std::span<const int32_t> ids) const;

  std::optional<int32_t> token_to_id(const std::string& token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  // One past the largest id, added tokens included.
  size_t vocab_size() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  static Tokenizer from_padded_json(const simdjson::padded_string& text, const std::string& source);
  std::unique_ptr<Impl> impl_;
};

// Turns ids into text one at a time during generation. Each push returns the text that is now
// certain; bytes of a character not yet complete are held back, so no broken UTF-8 is emitted.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true);
  std::string push(int32_t id);
  // Whatever is still held back (an incomplete character decodes as U+FFFD).
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0;  // ids_[prefix_, read_) produced the text already emitted
  size_t read_ = 0;
};

}  // namespace flow2
