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
// passed to every call, so that the index stays valid when its owner moves. Each slot keeps
// part of the hash, so that probing rarely has to touch the strings themselves.
class TokenIndex {
 public:
  void build(const std::vector<std::string>& tokens) {
    slots_.assign(table_capacity(tokens.size()), Slot{0, -1});
    const size_t mask = slots_.size() - 1;
    for (size_t id = 0; id < tokens.size(); ++id) {
      const std::string& text = tokens[id];
      if (text.empty()) continue;
      const size_t hash = hash_of(text);
      for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
        if (slots_[slot].id < 0) {
          slots_[slot] = {fingerprint(hash), static_cast<int32_t>(id)};
          break;
        }
        if (tokens[static_cast<size_t>(slots_[slot].id)] == text) break;  // first id wins
      }
    }
  }
  // The id whose token is `text`, or -1.
  int32_t find(std::string_view text, const std::vector<std::string>& tokens) const {
    if (slots_.empty()) return -1;
    const size_t mask = slots_.size() - 1;
    const size_t hash = hash_of(text);
    const uint32_t print = fingerprint(hash);
    for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
      const Slot& entry = slots_[slot];
      if (entry.id < 0) return -1;
      if (entry.fingerprint == print && tokens[static_cast<size_t>(entry.id)] == text) {
        return entry.id;
      }
    }
  }

 private:
  struct Slot {
    uint32_t fingerprint;
    int32_t id;
  };
  static size_t hash_of(std::string_view text) { return std::hash<std::string_view>{}(text); }
  static uint32_t fingerprint(size_t hash) { return static_cast<uint32_t>(hash >> 32); }
  std::vector<Slot> slots_;
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
