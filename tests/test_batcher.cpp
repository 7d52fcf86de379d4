// Batches for training: every example exactly once per epoch, similar lengths together,
// padding never trained on, seeded order, and packing that keeps examples whole.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "flow2/batcher.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

// Example i has length 1 + (i * 7) % 40 and tokens 1000 * i + t; its first half is prompt.
DatasetSplit synthetic_split(size_t count) {
  DatasetSplit split;
  split.name = "train";
  for (size_t i = 0; i < count; ++i) {
    Example example;
    size_t length = 1 + (i * 7) % 40;
    for (size_t t = 0; t < length; ++t) {
      example.tokens.push_back(static_cast<int32_t>(1000 * i + t));
      example.label_mask.push_back(t >= length / 2 ? 1 : 0);
    }
    example.line = static_cast<int64_t>(i + 1);
    split.examples.push_back(std::move(example));
  }
  return split;
}

// Checks a batch against the examples it names; returns how often each example appeared.
void check_batch(const DatasetSplit& split, const Batch& batch, int32_t pad_id,
                 std::map<size_t, int>& seen) {
  ASSERT_EQ(batch.ids.size(), static_cast<size_t>(batch.rows * batch.columns));
  ASSERT_EQ(batch.label_mask.size(), batch.ids.size());
  ASSERT_EQ(batch.segments.size(), batch.ids.size());
  for (int64_t r = 0; r < batch.rows; ++r) {
    size_t column = 0;
    int32_t segment = 0;
    for (size_t i : batch.plan.rows[static_cast<size_t>(r)]) {
      ++seen[i];
      ++segment;
      const Example& example = split.examples[i];
      for (size_t t = 0; t < example.tokens.size(); ++t, ++column) {
        size_t cell = static_cast<size_t>(r * batch.columns) + column;
        EXPECT_EQ(batch.ids[cell], example.tokens[t]);
        EXPECT_EQ(batch.label_mask[cell], t == 0 ? 0 : example.label_mask[t]);
        EXPECT_EQ(batch.segments[cell], segment);
      }
    }
    EXPECT_EQ(batch.lengths[static_cast<size_t>(r)], static_cast<int32_t>(column));
    for (; column < static_cast<size_t>(batch.columns); ++column) {
      size_t cell = static_cast<size_t>(r * batch.columns) + column;
      EXPECT_EQ(batch.ids[cell], pad_id);
      EXPECT_EQ(batch.label_mask[cell], 0);
      EXPECT_EQ(batch.segments[cell], 0);
    }
  }
}

TEST(Batcher, EveryExampleOncePerEpochWithPaddingMasked) {
  DatasetSplit split = synthetic_split(37);
  BatcherOptions options;
  options.batch_size = 4;
  options.pad_id = -7;
  options.seed = 11;
  Batcher batcher(split, options);
  EXPECT_EQ(batcher.batches_per_epoch(), 10u);
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<Batch> batches = batcher.epoch(epoch);
    EXPECT_EQ(batches.size(), 10u);
    std::map<size_t, int> seen;
    for (const auto& batch : batches) check_batch(split, batch, options.pad_id, seen);
    EXPECT_EQ(seen.size(), split.examples.size());
    for (const auto& [index, count] : seen) EXPECT_EQ(count, 1) << index;
  }
}

TEST(Batcher, BatchesHoldSimilarLengths) {
  DatasetSplit split = synthetic_split(80);
  BatcherOptions options;
  options.batch_size = 8;
  Batcher batcher(split, options);
  int64_t padding = 0, tokens = 0;
  for (const auto& batch : batcher.epoch(0)) {
    auto [low, high] = std::minmax_element(batch.lengths.begin(), batch.lengths.end());
    EXPECT_LE(*high - *low, 6);  // 80 lengths spread over 1..40: 2 per length
    for (int32_t length : batch.lengths) padding += batch.columns - length, tokens += length;
  }
  EXPECT_LT(padding * 10, tokens);
}

TEST(Batcher, OrderIsSeededPerEpoch) {
  DatasetSplit split = synthetic_split(50);
  BatcherOptions options;
  options.batch_size = 5;
  options.seed = 3;
  auto rows_of = [](const std::vector<BatchPlan>& plans) {
    std::vector<std::vector<size_t>> rows;
    for (const auto& plan : plans) rows.insert(rows.end(), plan.rows.begin(), plan.rows.end());
    return rows;
  };
  Batcher a(split, options), b(split, options);
  EXPECT_EQ(rows_of(a.plan_epoch(0)), rows_of(b.plan_epoch(0)));
  EXPECT_EQ(rows_of(a.plan_epoch(4)), rows_of(b.plan_epoch(4)));
  EXPECT_NE(rows_of(a.plan_epoch(0)), rows_of(a.plan_epoch(1)));
  options.seed = 4;
  Batcher c(split, options);
  EXPECT_NE(rows_of(a.plan_epoch(0)), rows_of(c.plan_epoch(0)));
}

TEST(Batcher, PackingKeepsExamplesWholeWithinTheRowLength) {
  DatasetSplit split = synthetic_split(60);
  BatcherOptions options;
  options.batch_size = 3;
  options.pack = true;
  options.pack_length = 64;
  options.seed = 5;
  Batcher batcher(split, options);
  int64_t total = 0;
  for (const auto& example : split.examples) total += static_cast<int64_t>(example.tokens.size());
  for (uint64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<Batch> batches = batcher.epoch(epoch);
    EXPECT_EQ(batches.size(), batcher.batches_per_epoch());
    std::map<size_t, int> seen;
    int64_t rows = 0;
    for (const auto& batch : batches) {
      check_batch(split, batch, options.pad_id, seen);
      EXPECT_LE(batch.columns, 64);
      rows += batch.rows;
    }
    EXPECT_EQ(seen.size(), split.examples.size());
    for (const auto& [index, count] : seen) EXPECT_EQ(count, 1) << index;
    // First-fit decreasing packs nearly full rows.
    EXPECT_LE(rows, total / 64 + 3);
  }
}

TEST(Batcher, PackLengthGrowsToTheLongestExample) {
  DatasetSplit split = synthetic_split(10);
  BatcherOptions options;
  options.pack = true;
  options.pack_length = 8;
  Batcher batcher(split, options);
  std::map<size_t, int> seen;
  for (const auto& batch : batcher.epoch(0)) check_batch(split, batch, 0, seen);
  EXPECT_EQ(seen.size(), 10u);
}

TEST(Batcher, RejectsBadOptions) {
  DatasetSplit split = synthetic_split(3);
  BatcherOptions options;
  options.batch_size = 0;
  EXPECT_THROW(Batcher(split, options), Error);
}

}  // namespace
}  // namespace flow2
