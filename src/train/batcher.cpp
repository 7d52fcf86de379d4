#include "flow2/batcher.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "flow2/error.h"

namespace flow2 {
namespace {

std::mt19937_64 epoch_rng(uint64_t seed, uint64_t epoch) {
  std::seed_seq sequence{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                         static_cast<uint32_t>(epoch), static_cast<uint32_t>(epoch >> 32)};
  return std::mt19937_64(sequence);
}

// Fisher-Yates with the generator's raw output: the same order on every standard library.
template <typename T>
void shuffle(std::vector<T>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng() % i]);
}

}  // namespace

Batcher::Batcher(const DatasetSplit& split, BatcherOptions options)
    : split_(split), options_(options) {
  check(options_.batch_size > 0, "batch size must be positive, got {}", options_.batch_size);
  check(options_.pack_length >= 0, "pack length must not be negative");
  int64_t longest = 0;
  for (const auto& example : split_.examples) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(example.tokens.size()));
  }
  pack_length_ = std::max(options_.pack_length, longest);
  std::vector<size_t> order(split_.examples.size());
  std::iota(order.begin(), order.end(), 0);
  size_t rows = make_rows(order).size();
  batches_per_epoch_ = (rows + static_cast<size_t>(options_.batch_size) - 1) /
                       static_cast<size_t>(options_.batch_size);
}

std::vector<std::vector<size_t>> Batcher::make_rows(std::vector<size_t> order) const {
  auto length = [&](size_t i) { return split_.examples[i].tokens.size(); };
  std::vector<std::vector<size_t>> rows;
  if (!options_.pack) {
    // Sorted by length, so that neighbours (the batches) have similar lengths; the order
    // within equal lengths comes from the caller's shuffle.
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return length(a) < length(b); });
    for (size_t i : order) rows.push_back({i});
    return rows;
  }
  // First-fit decreasing. The row count depends only on the lengths, not on the order of
  // equal ones, so every epoch has the same number of batches.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return length(a) > length(b); });
  std::vector<size_t> used;
  for (size_t i : order) {
    size_t row = 0;
    while (row < rows.size() && used[row] + length(i) > static_cast<size_t>(pack_length_)) ++row;
    if (row == rows.size()) {
      rows.emplace_back();
      used.push_back(0);
    }
    rows[row].push_back(i);
    used[row] += length(i);
  }
  // Fullest rows first so that batches of rows have similar lengths.
  std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    size_t total_a = 0, total_b = 0;
    for (size_t i : a) total_a += length(i);
    for (size_t i : b) total_b += length(i);
    return total_a > total_b;
  });
  return rows;
}

std::vector<BatchPlan> Batcher::plan_epoch(uint64_t epoch) const {
  std::mt19937_64 rng = epoch_rng(options_.seed, epoch);
  std::vector<size_t> order(split_.examples.size());
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  std::vector<std::vector<size_t>> rows = make_rows(std::move(order));
  std::vector<BatchPlan> plans;
  for (size_t start = 0; start < rows.size(); start += static_cast<size_t>(options_.batch_size)) {
    size_t end = std::min(rows.size(), start + static_cast<size_t>(options_.batch_size));
    BatchPlan plan;
    plan.rows.assign(rows.begin() + static_cast<ptrdiff_t>(start),
                     rows.begin() + static_cast<ptrdiff_t>(end));
    plans.push_back(std::move(plan));
  }
  shuffle(plans, rng);
  return plans;
}

Batch Batcher::assemble(const BatchPlan& plan) const {
  Batch batch;
  batch.plan = plan;
  batch.rows = static_cast<int64_t>(plan.rows.size());
  for (const auto& row : plan.rows) {
    int32_t length = 0;
    for (size_t i : row) length += static_cast<int32_t>(split_.examples[i].tokens.size());
    batch.lengths.push_back(length);
    batch.columns = std::max<int64_t>(batch.columns, length);
  }
  size_t cells = static_cast<size_t>(batch.rows * batch.columns);
  batch.ids.assign(cells, options_.pad_id);
  batch.label_mask.assign(cells, 0);
  batch.segments.assign(cells, 0);
  for (size_t r = 0; r < plan.rows.size(); ++r) {
    size_t column = 0;
    int32_t segment = 0;
    for (size_t i : plan.rows[r]) {
      const Example& example = split_.examples[i];
      ++segment;
      for (size_t t = 0; t < example.tokens.size(); ++t, ++column) {
        size_t cell = r * static_cast<size_t>(batch.columns) + column;
        batch.ids[cell] = example.tokens[t];
        // An example's first token has nothing of its own before it: never a target, also
        // when packed behind another example.
        batch.label_mask[cell] = t == 0 ? 0 : example.label_mask[t];
        batch.segments[cell] = segment;
      }
    }
  }
  return batch;
}

std::vector<Batch> Batcher::epoch(uint64_t epoch) const {
  std::vector<Batch> batches;
  for (const auto& plan : plan_epoch(epoch)) batches.push_back(assemble(plan));
  return batches;
}

}  // namespace flow2
