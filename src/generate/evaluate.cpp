#include "flow2/evaluate.h"

#include <cmath>

#include "flow2/error.h"
#include "flow2/generate.h"

namespace flow2 {
namespace {

// Loss of the targets in [begin, end) of row `row`, the span run as one sequence.
void add_span_loss(Model& model, const Batch& batch, int64_t row, int64_t begin, int64_t end,
                   LossSum& sum) {
  const size_t offset = static_cast<size_t>(row * batch.columns);
  bool any = false;
  for (int64_t t = begin + 1; t < end; ++t) any = any || batch.label_mask[offset + t] == 1;
  check(batch.label_mask[offset + begin] == 0,
        "evaluate: row {} position {} is a target with nothing before it to predict it from", row,
        begin);
  if (!any) return;
  // The last token predicts nothing that is scored: leave it out of the forward pass.
  const int64_t length = end - begin - 1;
  std::span<const int32_t> ids(batch.ids.data() + offset + begin, static_cast<size_t>(length));
  KVCache cache = model.make_cache(1, length);
  std::vector<float> logits = model.backend().to_host(model.forward(ids, 1, cache));
  const size_t vocab = static_cast<size_t>(model.config().vocab_size);
  for (int64_t t = begin + 1; t < end; ++t) {
    if (batch.label_mask[offset + t] != 1) continue;
    std::span<const float> row_logits(logits.data() + (t - 1 - begin) * vocab, vocab);
    sum.loss -= log_probability(row_logits, batch.ids[offset + t]);
    ++sum.tokens;
  }
}

}  // namespace

LossSum evaluate_loss(Model& model, const Batch& batch) {
  const size_t cells = static_cast<size_t>(batch.rows * batch.columns);
  check(batch.ids.size() == cells && batch.label_mask.size() == cells &&
            batch.lengths.size() == static_cast<size_t>(batch.rows),
        "evaluate: batch of {} x {} has {} ids, {} labels and {} lengths", batch.rows,
        batch.columns, batch.ids.size(), batch.label_mask.size(), batch.lengths.size());
  const bool segmented = batch.segments.size() == cells;
  LossSum sum;
  for (int64_t r = 0; r < batch.rows; ++r) {
    const int64_t length = batch.lengths[r];
    check(length >= 0 && length <= batch.columns, "evaluate: row {} length {} exceeds {}", r,
          length, batch.columns);
    int64_t begin = 0;
    while (begin < length) {
      int64_t end = begin + 1;
      if (segmented) {
        const int32_t* segments = batch.segments.data() + r * batch.columns;
        while (end < length && segments[end] == segments[begin]) ++end;
      } else {
        end = length;
      }
      add_span_loss(model, batch, r, begin, end, sum);
      begin = end;
    }
  }
  return sum;
}

SplitEvaluation evaluate_model(Model& model, const DatasetSplit& split, int64_t batch_size) {
  check(!split.empty(), "evaluate: the {} split has no examples", split.name);
  BatcherOptions options;
  options.batch_size = batch_size;
  Batcher batcher(split, options);
  SplitEvaluation result;
  double total = 0.0;
  for (const BatchPlan& plan : batcher.plan_epoch(0)) {
    LossSum sum = evaluate_loss(model, batcher.assemble(plan));
    total += sum.loss;
    result.tokens += sum.tokens;
  }
  result.examples = static_cast<int64_t>(split.examples.size());
  check(result.tokens > 0, "evaluate: the {} split has no trained tokens", split.name);
  result.loss = total / static_cast<double>(result.tokens);
  result.perplexity = std::exp(result.loss);
  return result;
}

}  // namespace flow2
