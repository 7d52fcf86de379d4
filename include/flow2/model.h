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
  // Tokens each sequence holds so far; an error when the sequences hold different numbers
  // (batched decoding of sequences at different points: length(b), lengths()).
  int64_t length() const;
  int64_t length(int64_t sequence) const { return lengths_.at(static_cast<size_t>(sequence)); }
  std::span<const int64_t> lengths() const { return lengths_; }
  bool uniform() const;
  int64_t longest() const;
  void clear() { std::fill(lengths_.begin(), lengths_.end(), 0); }
  // Forgets everything after the first `length` tokens of each sequence (of one sequence).
  void truncate(int64_t length);
  void truncate_sequence(int64_t sequence, int64_t length);

  // Sequence b alone, as a cache of one sequence sharing this one's memory (its length is
  // copied; Model::forward_sequence writes it back).
  KVCache sequence_view(int64_t sequence);
  void set_length(int64_t sequence, int64_t length);

  Tensor& keys(size_t layer) { return keys_[layer]; }
  Tensor& values(size_t layer) { return values_[layer]; }
  void advance(int64_t tokens);

 private:
  KVCache(int64_t capacity, std::vector<Tensor> keys, std::vector<Tensor> values, int64_t length);
  int64_t batch_;
  int64_t capacity_;
  std::vector<int64_t> lengths_;  // per sequence
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
  // The same for one new token per sequence whose ids stay on the backend's device: `ids` of
  // Backend::make_token_ids, chosen there by choose_into from this model's logits (so within
  // the vocabulary). The host records the step without waiting for them (pipelined decoding).
  Tensor forward(const Tensor& ids, int64_t batch, KVCache& cache, LogitRows rows = LogitRows::All);
  // Runs `ids` for sequence b of a batched cache alone (a prompt joining a batch whose other
  // sequences are elsewhere); later forward calls decode all sequences together, each at its
  // own length.
  Tensor forward_sequence(std::span<const int32_t> ids, int64_t sequence, KVCache& cache,
                          LogitRows rows = LogitRows::All);

 private:
  struct State;
  explicit Model(std::unique_ptr<State> state);
  // forward's body: the ids on the host (host_ids) or in a device tensor (device_ids).
  Tensor run(std::span<const int32_t> host_ids, const Tensor* device_ids, int64_t count,
             int64_t batch, KVCache& cache, LogitRows rows);
  std::unique_ptr<State> state_;
};

}  // namespace flow2
