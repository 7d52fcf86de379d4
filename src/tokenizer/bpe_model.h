// The BPE model of tokenizer.json: vocabulary, ranked merges, and the options Hugging Face
// tokenizers support (ignore_merges, byte_fallback, unk_token, fuse_unk, prefix/suffix).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/flat_tables.h"

namespace flow2 {

class BpeModel {
 public:
  // `options` is the "model" object without its vocab and merges (type, unk_token, fuse_unk,
  // byte_fallback, ...); `vocab` the token -> id entries; `merges` the pairs in rank order.
  // `ranks`, when given, holds each merge's rank instead of its position: merges of equal rank
  // apply leftmost first (SentencePiece vocabularies, where ranks come from token scores).
  static BpeModel build(const nlohmann::json& options,
                        std::vector<std::pair<std::string_view, int64_t>> vocab,
                        const std::vector<std::pair<std::string_view, std::string_view>>& merges,
                        const std::string& where, std::span<const int32_t> ranks = {});

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocabulary entry of `id`, or nullptr.
  const std::string* id_to_token(int32_t id) const;
  size_t vocab_size() const { return id_to_token_.size(); }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  std::vector<std::string> id_to_token_;
  TokenIndex vocab_;  // indexes id_to_token_
  MergeTable merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::vector<int32_t> byte_ids_;  // id of "<0xNN>" per byte, -1 when absent

  // Words seen before, with their ids: natural text repeats words constantly.
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace flow2
