#include "tokenizer/bpe_model.h"

#include <fmt/format.h>

#include <array>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/utf8.h"
#include "flow2/error.h"

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

}  // namespace

BpeModel BpeModel::build(const json& model, std::vector<std::pair<std::string_view, int64_t>> vocab,
                         const std::vector<std::pair<std::string_view, std::string_view>>& merges,
                         const std::string& where, std::span<const int32_t> ranks) {
  check(model.is_object(), "{}: 'model' must be an object", where);
  auto type = optional_string(model, "type");
  check(!type || *type == "BPE", "{}: unsupported model type '{}' (only BPE is supported)", where,
        type.value_or(""));
  BpeModel bpe;
  int64_t largest = -1;
  for (const auto& [token, id] : vocab) {
    check(id >= 0 && id < (1 << 30), "{}: vocab entry '{}' has an invalid id {}", where, token, id);
    largest = std::max(largest, id);
  }
  bpe.id_to_token_.resize(static_cast<size_t>(largest + 1));
  for (const auto& [token, id] : vocab) bpe.id_to_token_[static_cast<size_t>(id)] = token;
  bpe.vocab_.build(bpe.id_to_token_);

  // Resolving the ~300k merges of a large vocabulary to ids is most of the load time and is
  // read-only work: it runs on all cores, then the table is filled in rank order.
  const std::string prefix = optional_string(model, "continuing_subword_prefix").value_or("");
  const int64_t count = static_cast<int64_t>(merges.size());
  std::vector<std::array<int32_t, 3>> resolved(merges.size());
#pragma omp parallel if (count > 20000)
  {
    std::string merged;
#pragma omp for schedule(static)
    for (int64_t rank = 0; rank < count; ++rank) {
      const auto& [left, right] = merges[static_cast<size_t>(rank)];
      // With a continuing-subword prefix, "##a" + "##b" makes "##ab".
      std::string_view right_part = right;
      if (!prefix.empty() && right_part.starts_with(prefix)) {
        right_part.remove_prefix(prefix.size());
      }
      merged.assign(left);
      merged.append(right_part);
      resolved[static_cast<size_t>(rank)] = {bpe.vocab_.find(left, bpe.id_to_token_),
                                             bpe.vocab_.find(right, bpe.id_to_token_),
                                             bpe.vocab_.find(merged, bpe.id_to_token_)};
    }
  }
  check(ranks.empty() || ranks.size() == merges.size(), "{}: {} merge ranks for {} merges", where,
        ranks.size(), merges.size());
  bpe.merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left_id, right_id, merged_id] = resolved[rank];
    check(left_id >= 0 && right_id >= 0 && merged_id >= 0,
          "{}: merge {} ('{}' + '{}') uses tokens not in the vocab", where, rank,
          merges[rank].first, merges[rank].second);
    const int32_t order = ranks.empty() ? static_cast<int32_t>(rank) : ranks[rank];
    bpe.merges_.assign(left_id, right_id, Merge{order, merged_id});
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
  int32_t id = vocab_.find(token, id_to_token_);
  return id < 0 ? std::nullopt : std::optional<int32_t>(id);
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
    if (i > 0) text = utf8::prepend(continuing_subword_prefix_, text);
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
    if (const Merge* merge = merges_.find(symbols[position], symbols[next[position]])) {
      queue.push({merge->rank, position, symbols[position], symbols[next[position]]});
    }
  };
  for (size_t i = 0; i + 1 < count; ++i) consider(static_cast<int32_t>(i));
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    int32_t left = top.position;
    int32_t right = alive[left] ? next[left] : -1;
    if (right < 0 || symbols[left] != top.left_id || symbols[right] != top.right_id) continue;
    symbols[left] = merges_.find(top.left_id, top.right_id)->merged_id;
    alive[right] = false;
    next[left] = next[right];
    if (next[right] >= 0) previous[next[right]] = left;
    consider(previous[left]);
    consider(left);
  }
  for (int32_t i = count ? 0 : -1; i >= 0; i = next[i]) ids.push_back(symbols[i]);
}

}  // namespace flow2
