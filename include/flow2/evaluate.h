// Evaluation of a language model on fine-tuning data: the mean cross-entropy of the trained
// tokens (label_mask == 1, each predicted from the tokens before it) and its perplexity, with
// the inference model (forward only; any base dtype, with or without a LoRA adapter).
#pragma once

#include <cstdint>

#include "flow2/batcher.h"
#include "flow2/dataset.h"
#include "flow2/model.h"
#include "flow2/trainable.h"

namespace flow2 {

// The summed loss of `batch`'s targets, the contract of TrainableModel::evaluate: each row is
// run by itself over its real length, each packed segment on its own (positions restart and
// nothing attends across segments).
LossSum evaluate_loss(Model& model, const Batch& batch);

struct SplitEvaluation {
  int64_t examples = 0;
  int64_t tokens = 0;  // targets scored
  double loss = 0;     // mean natural-log cross-entropy per target
  double perplexity = 0;
};

// Every example of `split` once, in batches of `batch_size` rows.
SplitEvaluation evaluate_model(Model& model, const DatasetSplit& split, int64_t batch_size = 8);

}  // namespace flow2
