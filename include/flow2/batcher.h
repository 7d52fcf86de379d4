// Batches of a dataset split for training: examples of similar length together (little
// padding), the batch order shuffled by seed for each epoch, padding masked out of the loss.
// With packing, several examples share a row.
#pragma once

#include <cstdint>
#include <vector>

#include "flow2/dataset.h"

namespace flow2 {

struct BatcherOptions {
  int64_t batch_size = 4;  // rows per batch (the last batch of an epoch may have fewer)
  int32_t pad_id = 0;      // fills rows past their length
  uint64_t seed = 0;
  // Pack examples into rows of up to pack_length tokens (0: the longest example), first-fit
  // decreasing; each example stays whole and contiguous.
  bool pack = false;
  int64_t pack_length = 0;
};

// Which examples go where: rows[r] lists the example indices packed into row r, in order.
struct BatchPlan {
  std::vector<std::vector<size_t>> rows;
};

struct Batch {
  int64_t rows = 0;
  int64_t columns = 0;       // the longest row
  std::vector<int32_t> ids;  // [rows, columns], row-major, pad_id after each row's end
  // [rows, columns]: 1 where the token is a target; 0 on padding and on each example's first
  // token (nothing of its own precedes it, also when packed behind another example).
  std::vector<uint8_t> label_mask;
  std::vector<int32_t> lengths;  // real tokens per row
  // [rows, columns]: 1, 2, ... for the examples packed into a row, 0 on padding (a trainer
  // keeps attention and positions within one segment).
  std::vector<int32_t> segments;
  BatchPlan plan;
};

class Batcher {
 public:
  // Keeps a reference to `split`, which must outlive the batcher.
  Batcher(const DatasetSplit& split, BatcherOptions options);

  // The plans of one epoch: every example exactly once. The same seed and epoch give the same
  // batches; different epochs shuffle differently.
  std::vector<BatchPlan> plan_epoch(uint64_t epoch) const;
  Batch assemble(const BatchPlan& plan) const;
  std::vector<Batch> epoch(uint64_t epoch) const;
  size_t batches_per_epoch() const { return batches_per_epoch_; }

 private:
  std::vector<std::vector<size_t>> make_rows(std::vector<size_t> order) const;

  const DatasetSplit& split_;
  BatcherOptions options_;
  int64_t pack_length_ = 0;
  size_t batches_per_epoch_ = 0;
};

}  // namespace flow2
