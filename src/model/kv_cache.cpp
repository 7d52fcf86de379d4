#include <algorithm>
#include <functional>

#include "flow2/error.h"
#include "flow2/model.h"

namespace flow2 {

KVCache::KVCache(Backend& backend, const ModelConfig& config, int64_t batch, int64_t capacity)
    : batch_(batch),
      capacity_(capacity),
      lengths_(static_cast<size_t>(std::max<int64_t>(batch, 0))) {
  check(batch > 0 && capacity > 0, "KV cache needs a positive batch and capacity, got {} x {}",
        batch, capacity);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    keys_.push_back(backend.make_cache_tensor({batch * capacity, config.kv_dim()}));
    values_.push_back(backend.make_cache_tensor({batch * capacity, config.kv_dim()}));
  }
}

KVCache::KVCache(int64_t capacity, std::vector<Tensor> keys, std::vector<Tensor> values,
                 int64_t length)
    : batch_(1),
      capacity_(capacity),
      lengths_{length},
      keys_(std::move(keys)),
      values_(std::move(values)) {}

int64_t KVCache::length() const {
  check(uniform(), "the cache's sequences hold different numbers of tokens; ask length(b)");
  return lengths_.front();
}

bool KVCache::uniform() const {
  return std::adjacent_find(lengths_.begin(), lengths_.end(), std::not_equal_to<>()) ==
         lengths_.end();
}

int64_t KVCache::longest() const {
  return *std::max_element(lengths_.begin(), lengths_.end());
}

void KVCache::truncate(int64_t length) {
  for (int64_t b = 0; b < batch_; ++b) truncate_sequence(b, length);
}

void KVCache::truncate_sequence(int64_t sequence, int64_t length) {
  int64_t& held = lengths_.at(static_cast<size_t>(sequence));
  held = std::min(held, std::max<int64_t>(length, 0));
}

void KVCache::advance(int64_t tokens) {
  for (int64_t& held : lengths_) held += tokens;
}

KVCache KVCache::sequence_view(int64_t sequence) {
  check(sequence >= 0 && sequence < batch_, "sequence {} of a cache of {}", sequence, batch_);
  std::vector<Tensor> keys, values;
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    keys.push_back(keys_[layer].row_slice(sequence * capacity_, capacity_));
    values.push_back(values_[layer].row_slice(sequence * capacity_, capacity_));
  }
  return KVCache(capacity_, std::move(keys), std::move(values), lengths_[sequence]);
}

void KVCache::set_length(int64_t sequence, int64_t length) {
  check(length >= 0 && length <= capacity_, "length {} outside the cache capacity {}", length,
        capacity_);
  lengths_.at(static_cast<size_t>(sequence)) = length;
}

}  // namespace flow2
