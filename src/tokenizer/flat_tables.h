// Open-addressing hash tables for the BPE model's two hot lookups: token text -> id and
// (left id, right id) -> merge. A node-based std::unordered_map made loading the 400k entries
// of a Llama 3 tokenizer 4x slower.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace flow2 {

// Capacity: the smallest power of two with room for `count` entries at most half full.
inline size_t table_capacity(size_t count) {
  size_t capacity = 16;
  while (capacity < 2 * count) capacity *= 2;
  return capacity;
}

// Maps strings to their ids; the strings are held by the caller (`tokens`, indexed by id) and
// passed to every call, so that the index stays valid when its owner moves.
class TokenIndex {
 public:
  void build(const std::vector<std::string>& tokens) {
    slots_.assign(table_capacity(tokens.size()), -1);
    const size_t mask = slots_.size() - 1;
    for (size_t id = 0; id < tokens.size(); ++id) {
      const std::string& text = tokens[id];
      if (text.empty()) continue;
      for (size_t slot = hash(text) & mask;; slot = (slot + 1) & mask) {
        if (slots_[slot] < 0) {
          slots_[slot] = static_cast<int32_t>(id);
          break;
        }
        if (tokens[static_cast<size_t>(slots_[slot])] == text) break;  // first id wins
      }
    }
  }
  // The id whose token is `text`, or -1.
  int32_t find(std::string_view text, const std::vector<std::string>& tokens) const {
    if (slots_.empty()) return -1;
    const size_t mask = slots_.size() - 1;
    for (size_t slot = hash(text) & mask;; slot = (slot + 1) & mask) {
      int32_t id = slots_[slot];
      if (id < 0 || tokens[static_cast<size_t>(id)] == text) return id;
    }
  }

 private:
  static size_t hash(std::string_view text) { return std::hash<std::string_view>{}(text); }
  std::vector<int32_t> slots_;
};

struct Merge {
  int32_t rank;
  int32_t merged_id;
};

// (left id, right id) -> merge; a later entry for the same pair replaces the earlier one, as in
// the reference implementation.
class MergeTable {
 public:
  void reserve(size_t count) { slots_.assign(table_capacity(count), Slot{kEmpty, {}}); }
  void assign(int32_t left, int32_t right, Merge merge) {
    uint64_t key = pack(left, right);
    const size_t mask = slots_.size() - 1;
    for (size_t slot = mix(key) & mask;; slot = (slot + 1) & mask) {
      if (slots_[slot].key == kEmpty || slots_[slot].key == key) {
        slots_[slot] = {key, merge};
        return;
      }
    }
  }
  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    uint64_t key = pack(left, right);
    const size_t mask = slots_.size() - 1;
    for (size_t slot = mix(key) & mask;; slot = (slot + 1) & mask) {
      if (slots_[slot].key == key) return &slots_[slot].merge;
      if (slots_[slot].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;  // ids are below 2^31: no pair packs to this
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  static uint64_t pack(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  static uint64_t mix(uint64_t key) {  // splitmix64 finalizer: spreads both ids over the bits
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ull;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebull;
    return key ^ (key >> 31);
  }
  std::vector<Slot> slots_;
};

}  // namespace flow2
