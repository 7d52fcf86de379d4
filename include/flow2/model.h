// A causal language model ready to run: config, weights on a backend, and the forward pass.
#pragma once

#include <algorithm>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "flow2/backend.h"
#include "flow2/model_config.h"
#include "flow2/weight_store.h"

namespace flow2 {

class GgufFile;
struct LoraAdapter;

// A checkpoint as found on disk, before any weight is touched. Tensors carry Hugging Face names
// and layouts whatever the file format.
struct Checkpoint {
  std::filesystem::path path;
  ModelConfig config;
  WeightStore weights;
  std::shared_ptr<const GgufFile> gguf;  // set for GGUF files: vocabulary, chat template
};

// Opens a Hugging Face model directory (config.json + safetensors, sharded or not) or a GGUF
// file.
Checkpoint open_checkpoint(const std::filesystem::path& path);
Checkpoint open_gguf_checkpoint(const std::filesystem::path& path);

// Keys and values of every layer for `batch` sequences of up to `capacity` tokens each.
class KVCache {
 public:
  KVCache(Backend& backend, const ModelConfig& config, int64_t batch, int64_t capacity);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  // Tokens each sequence holds so far.
  int64_t length() const { return length_; }
  void clear() { length_ = 0; }
  // Forgets everything after the first `length` tokens of each sequence.
  void truncate(int64_t length) { length_ = std::min(length_, std::max<int64_t>(length, 0)); }

  Tensor& keys(size_t layer) { return keys_[layer]; }
  Tensor& values(size_t layer) { return values_[layer]; }
  void advance(int64_t tokens) { length_ += tokens; }

 private:
  int64_t batch_;
  int64_t capacity_;
  int64_t length_ = 0;
  std::vector<Tensor> keys_;
  std::vector<Tensor> values_;
};

enum class LogitRows {
  All,  // one row per input token
  Last  // one row per sequence: its last token
};

class Model {
 public:
  // With `adapter`, every module it adapts computes y = x W^T + scaling * (x A^T) B^T (checked
  // against the config first; the adapter is copied, so it need not outlive the model).
  static std::unique_ptr<Model> load(const Checkpoint& checkpoint, Backend& backend,
                                     const LoraAdapter* adapter = nullptr);
  ~Model();

  const ModelConfig& config() const;
  Backend& backend() const;
  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // Runs `ids` ([batch, n] row-major: n new tokens per sequence) after what `cache` holds and
  // appends them to it. Returns float32 logits [batch * n, vocab] or, with LogitRows::Last,
  // [batch, vocab]. An id outside the vocabulary, or a cache too small, is an error.
  Tensor forward(std::span<const int32_t> ids, int64_t batch, KVCache& cache,
                 LogitRows rows = LogitRows::All);

 private:
  struct State;
  explicit Model(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace flow2
