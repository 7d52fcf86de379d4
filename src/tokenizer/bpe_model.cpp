#include "tokenizer/bpe_model.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <queue>

#include "flow2/error.h"
#include "tokenizer/utf8.h"

namespace flow2 {
namespace {

using nlohmann::json;

constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kMaxCachedWordBytes = 256;

std::optional<std::string> optional_string(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  return it->is_string() ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

BpeModel BpeModel::from_json(const json& model, const std::string& where) {
  check(model.is_object(), "{}: 'model' must be an object", where);
  auto type = optional_string(model, "type");
  check(!type || *type == "BPE", "{}: unsupported model type '{}' (only BPE is supported)", where,
        type.value_or(""));
  auto vocab = model.find("vocab");
  check(vocab != model.end() && vocab->is_object(), "{}: model has no 'vocab' object", where);
  BpeModel bpe;
  bpe.vocab_.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    check(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 30),
          "{}: vocab entry '{}' has an invalid id", where, token);
    int32_t value = id.get<int32_t>();
    bpe.vocab_.emplace(token, value);
    if (static_cast<size_t>(value) >= bpe.id_to_token_.size()) {
      bpe.id_to_token_.resize(static_cast<size_t>(value) + 1);
    }
    bpe.id_to_token_[static_cast<size_t>(value)] = token;
  }

  const std::string prefix = optional_string(model, "continuing_subword_prefix").value_or("");
  auto merges = model.find("merges");
  if (merges != model.end() && !merges->is_null()) {
    check(merges->is_array(), "{}: 'merges' must be a list", where);
    bpe.merges_.reserve(merges->size());
    int32_t rank = 0;
    for (const auto& merge : *merges) {
      std::string left, right;
      if (merge.is_string()) {  // "a b"
        const auto& text = merge.get_ref<const std::string&>();
        size_t space = text.find(' ');
        check(space != std::string::npos && text.find(' ', space + 1) == std::string::npos,
              "{}: merge {} '{}' is not two tokens separated by a space", where, rank, text);
        left = text.substr(0, space);
        right = text.substr(space + 1);
      } else {  // ["a", "b"]
        check(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
              "{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", where, rank);
        left = merge[0].get<std::string>();
        right = merge[1].get<std::string>();
      }
      auto left_id = bpe.token_to_id(left), right_id = bpe.token_to_id(right);
      // With a continuing-subword prefix, "##a" + "##b" makes "##ab".
      std::string_view right_part = right;
      if (!prefix.empty() && right_part.starts_with(prefix))
        right_part.remove_prefix(prefix.size());
      auto merged_id = bpe.token_to_id(left + std::string(right_part));
      check(left_id && right_id && merged_id,
            "{}: merge {} ('{}' + '{}') uses tokens not in the vocab", where, rank, left, right);
      bpe.merges_.try_emplace(pair_key(*left_id, *right_id), rank, *merged_id);
      ++rank;
    }
  }
  if (auto unk = optional_string(model, "unk_token")) {
    bpe.unk_id_ = bpe.token_to_id(*unk);
    check(bpe.unk_id_.has_value(), "{}: unk_token '{}' is not in the vocab", where, *unk);
  }
  auto flag = [&](const char* key) {
    auto it = model.find(key);
    return it != model.end() && it->is_boolean() && it->get<bool>();
  };
  bpe.fuse_unk_ = flag("fuse_unk");
  bpe.byte_fallback_ = flag("byte_fallback");
  bpe.ignore_merges_ = flag("ignore_merges");
  bpe.continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix").value_or("");
  bpe.end_of_word_suffix_ = optional_string(model, "end_of_word_suffix").value_or("");
  bpe.byte_ids_.assign(256, -1);
  for (int byte = 0; byte < 256; ++byte) {
    if (auto id = bpe.token_to_id(fmt::format("<0x{:02X}>", byte))) bpe.byte_ids_[byte] = *id;
  }
  return bpe;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? std::nullopt : std::optional<int32_t>(it->second);
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      ids.push_back(*id);
      return;
    }
  }
  if (word.size() <= kMaxCachedWordBytes) {
    std::lock_guard lock(cache_->mutex);
    auto it = cache_->words.find(word);
    if (it != cache_->words.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = ids.size();
  merge_word(word, ids);
  if (word.size() <= kMaxCachedWordBytes) {
    std::lock_guard lock(cache_->mutex);
    if (cache_->words.size() >= kCacheCapacity) cache_->words.clear();
    cache_->words.emplace(std::string(word), std::vector<int32_t>(ids.begin() + start, ids.end()));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  // Initial symbols: one per character (with prefix/suffix), byte tokens or unk when absent.
  std::vector<int32_t> symbols;
  bool previous_unknown = false;
  auto characters = utf8::characters(word);
  for (size_t i = 0; i < characters.size(); ++i) {
    std::string text(characters[i]);
    if (i > 0) text.insert(0, continuing_subword_prefix_);
    if (i + 1 == characters.size()) text += end_of_word_suffix_;
    if (auto id = token_to_id(text)) {
      symbols.push_back(*id);
      previous_unknown = false;
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (unsigned char byte : characters[i]) all_bytes &= byte_ids_[byte] >= 0;
      if (all_bytes) {
        for (unsigned char byte : characters[i]) symbols.push_back(byte_ids_[byte]);
        previous_unknown = false;
        continue;
      }
    }
    if (unk_id_) {
      if (!(fuse_unk_ && previous_unknown)) symbols.push_back(*unk_id_);
      previous_unknown = true;
    }
  }

  // Merge the lowest-ranked adjacent pair first (leftmost on ties) until none applies.
  // Symbols form a linked list; stale queue entries are skipped when popped.
  const size_t count = symbols.size();
  std::vector<int32_t> next(count), previous(count);
  std::vector<bool> alive(count, true);
  for (size_t i = 0; i < count; ++i) {
    next[i] = i + 1 < count ? static_cast<int32_t>(i + 1) : -1;
    previous[i] = static_cast<int32_t>(i) - 1;
  }
  struct Candidate {
    int32_t rank;
    int32_t position;
    int32_t left_id, right_id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int32_t position) {
    if (position < 0 || next[position] < 0) return;
    auto it = merges_.find(pair_key(symbols[position], symbols[next[position]]));
    if (it != merges_.end()) {
      queue.push({it->second.first, position, symbols[position], symbols[next[position]]});
    }
  };
  for (size_t i = 0; i + 1 < count; ++i) consider(static_cast<int32_t>(i));
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    int32_t left = top.position;
    int32_t right = alive[left] ? next[left] : -1;
    if (right < 0 || symbols[left] != top.left_id || symbols[right] != top.right_id) continue;
    symbols[left] = merges_.at(pair_key(top.left_id, top.right_id)).second;
    alive[right] = false;
    next[left] = next[right];
    if (next[right] >= 0) previous[next[right]] = left;
    consider(previous[left]);
    consider(left);
  }
  for (int32_t i = count ? 0 : -1; i >= 0; i = next[i]) ids.push_back(symbols[i]);
}

}  // namespace flow2
