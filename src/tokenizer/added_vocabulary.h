// Added tokens of tokenizer.json ("added_tokens"): matched in the text before the model runs,
// leftmost-longest, with their lstrip / rstrip / single_word / normalized options.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace flow2 {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A stretch of text: either an added token (id set) or text for the normal pipeline.
struct TextSegment {
  std::string text;
  std::optional<int32_t> id;
  size_t offset = 0;  // where it begins in the text that was split
};

class AddedVocabulary {
 public:
  static AddedVocabulary from_json(const nlohmann::json& list, const std::string& where);

  // Cuts `text` at occurrences of the added tokens whose `normalized` flag equals `normalized`.
  std::vector<TextSegment> split(const std::string& text, bool normalized) const;

  const AddedToken* find(int32_t id) const;
  std::optional<int32_t> token_to_id(const std::string& content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  // First bytes of token contents, per normalized flag: a quick filter while scanning.
  bool first_byte_[2][256] = {};
};

}  // namespace flow2
