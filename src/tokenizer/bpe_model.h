// The BPE model of tokenizer.json: vocabulary, ranked merges, and the options Hugging Face
// tokenizers support (ignore_merges, byte_fallback, unk_token, fuse_unk, prefix/suffix).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flow2 {

class BpeModel {
 public:
  static BpeModel from_json(const nlohmann::json& model, const std::string& where);

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
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
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
