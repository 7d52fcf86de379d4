#include <cmath>

#include "flow2/batcher.h"
#include "flow2/training.h"

namespace flow2 {

EvalResult evaluate_split(TrainableModel& model, const DatasetSplit& split, int64_t batch_size,
                          int32_t pad_id) {
  EvalResult result;
  if (split.empty()) return result;
  // The order of batches does not change the sum; the seed only fixes it.
  Batcher batcher(split, {.batch_size = batch_size, .pad_id = pad_id, .seed = 0});
  double loss = 0;
  for (const BatchPlan& plan : batcher.plan_epoch(0)) {
    LossSum sum = model.evaluate(batcher.assemble(plan));
    loss += sum.loss;
    result.tokens += sum.tokens;
  }
  result.loss = result.tokens > 0 ? loss / static_cast<double>(result.tokens) : 0.0;
  result.perplexity = std::exp(result.loss);
  return result;
}

}  // namespace flow2
