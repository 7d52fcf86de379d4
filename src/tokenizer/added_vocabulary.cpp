#include "tokenizer/added_vocabulary.h"

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

using nlohmann::json;

bool is_word_character(char32_t c) {
  return utf8::is_alphanumeric(c) || c == '_';
}

// The code point that ends just before `position`.
char32_t previous_character(const std::string& text, size_t position) {
  size_t start = position - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) --start;
  size_t length = 0;
  return utf8::decode(text, start, &length);
}

}  // namespace

AddedVocabulary AddedVocabulary::from_json(const json& list, const std::string& where) {
  AddedVocabulary vocabulary;
  if (list.is_null()) return vocabulary;
  check(list.is_array(), "{}: 'added_tokens' must be a list", where);
  for (const auto& entry : list) {
    check(entry.is_object() && entry.contains("id") && entry["id"].is_number_integer() &&
              entry.contains("content") && entry["content"].is_string(),
          "{}: every added token needs an integer 'id' and a string 'content'", where);
    auto flag = [&](const char* key) {
      auto it = entry.find(key);
      return it != entry.end() && it->is_boolean() && it->get<bool>();
    };
    AddedToken token;
    token.id = entry["id"].get<int32_t>();
    token.content = entry["content"].get<std::string>();
    check(!token.content.empty(), "{}: added token {} has empty content", where, token.id);
    token.special = flag("special");
    token.lstrip = flag("lstrip");
    token.rstrip = flag("rstrip");
    token.single_word = flag("single_word");
    token.normalized = flag("normalized");
    vocabulary.by_id_[token.id] = vocabulary.tokens_.size();
    vocabulary.by_content_[token.content] = vocabulary.tokens_.size();
    vocabulary.first_byte_[token.normalized][static_cast<unsigned char>(token.content[0])] = true;
    vocabulary.tokens_.push_back(std::move(token));
  }
  return vocabulary;
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::token_to_id(const std::string& content) const {
  auto it = by_content_.find(content);
  return it == by_content_.end() ? std::nullopt : std::optional<int32_t>(tokens_[it->second].id);
}

std::vector<TextSegment> AddedVocabulary::split(const std::string& text, bool normalized) const {
  std::vector<TextSegment> segments;
  size_t emitted = 0;  // text before this offset is already in `segments`
  size_t position = 0;
  while (position < text.size()) {
    if (!first_byte_[normalized][static_cast<unsigned char>(text[position])]) {
      ++position;
      continue;
    }
    // Leftmost-longest: of the tokens that match here, take the longest acceptable one.
    const AddedToken* best = nullptr;
    for (const auto& token : tokens_) {
      if (token.normalized != normalized || token.content.size() > text.size() - position ||
          (best && token.content.size() <= best->content.size()) ||
          text.compare(position, token.content.size(), token.content) != 0) {
        continue;
      }
      size_t end = position + token.content.size();
      if (token.single_word) {
        size_t length = 0;
        bool word_before = position > 0 && is_word_character(previous_character(text, position));
        bool word_after = end < text.size() && is_word_character(utf8::decode(text, end, &length));
        if (word_before || word_after) continue;
      }
      best = &token;
    }
    if (!best) {
      ++position;
      continue;
    }
    size_t begin = position, end = position + best->content.size();
    // lstrip / rstrip swallow the whitespace around the token.
    while (best->lstrip && begin > emitted) {
      size_t start = begin - 1;
      while (start > emitted && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) --start;
      size_t length = 0;
      if (!utf8::is_whitespace(utf8::decode(text, start, &length))) break;
      begin = start;
    }
    while (best->rstrip && end < text.size()) {
      size_t length = 0;
      if (!utf8::is_whitespace(utf8::decode(text, end, &length))) break;
      end += length;
    }
    if (begin > emitted) segments.push_back({text.substr(emitted, begin - emitted), {}, emitted});
    segments.push_back({text.substr(begin, end - begin), best->id, begin});
    emitted = position = end;
  }
  if (emitted < text.size()) segments.push_back({text.substr(emitted), {}, emitted});
  return segments;
}

}  // namespace flow2
