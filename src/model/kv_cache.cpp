#include "flow2/error.h"
#include "flow2/model.h"

namespace flow2 {

KVCache::KVCache(Backend& backend, const ModelConfig& config, int64_t batch, int64_t capacity)
    : batch_(batch), capacity_(capacity) {
  check(batch > 0 && capacity > 0, "KV cache needs a positive batch and capacity, got {} x {}",
        batch, capacity);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    keys_.push_back(backend.make_cache_tensor({batch * capacity, config.kv_dim()}));
    values_.push_back(backend.make_cache_tensor({batch * capacity, config.kv_dim()}));
  }
}

}  // namespace flow2
