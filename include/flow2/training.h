// The fine-tuning loop: batches from the train split, gradient accumulation normalized by the
// target tokens of the whole optimizer step, clipping, AdamW with a learning-rate schedule,
// periodic validation, checkpoints that resume bit-exactly, a JSONL log and a summary.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>

#include "flow2/dataset.h"
#include "flow2/lr_schedule.h"
#include "flow2/optimizer.h"
#include "flow2/trainable.h"

namespace flow2 {

struct TrainingOptions {
  int64_t epochs = 1;
  int64_t iters = 0;  // optimizer steps; 0: `epochs` passes over the train split
  int64_t batch_size = 4;
  int64_t grad_accum = 1;  // micro-batches of batch_size rows per optimizer step
  double learning_rate = 1e-4;
  LrSchedule schedule = LrSchedule::Constant;
  int64_t warmup = 0;  // steps of linear warmup
  AdamWOptions adamw{.weight_decay = 0.0};
  double max_grad_norm = 1.0;  // 0: no clipping
  // Batch order (Batcher shuffles by seed) and dropout (step seeds derive from it).
  uint64_t seed = 0;
  int32_t pad_id = 0;
  bool pack = false;
  int64_t eval_every = 0;  // validate every N steps (and after the last); 0: after the last only
  int64_t save_every = 0;  // training checkpoint every N steps; 0: none
  // train_log.jsonl, training_state.safetensors and train_summary.json go here; empty: none.
  std::filesystem::path output_dir;
  bool resume = false;           // continue from output_dir's training_state.safetensors
  int64_t model_parameters = 0;  // the frozen model's parameter count, for the summary
  // Further settings a resumed run must share with the checkpoint (flow2 finetune: the model,
  // data and LoRA settings); compared key by key like the options above.
  nlohmann::json fingerprint;
};

struct StepRecord {
  int64_t step = 0;  // 1-based, optimizer steps completed
  int64_t total_steps = 0;
  double epoch = 0;  // fractional epochs of micro-batches consumed
  double loss = 0;   // summed token losses / target tokens of the step
  double learning_rate = 0;
  double grad_norm = 0;  // before clipping
  int64_t target_tokens = 0;
  int64_t tokens = 0;  // every real (non-padding) token processed
  double tokens_per_s = 0;
  int64_t peak_memory_bytes = 0;
  double elapsed_s = 0;    // since this run (or resumption) started
  int64_t first_step = 0;  // steps already done when this run started
};

struct EvalResult {
  double loss = 0;
  double perplexity = 0;
  int64_t tokens = 0;
};

struct TrainingCallbacks {
  // After each step's log row; returning false stops training after that step's evaluation
  // and checkpoint.
  std::function<bool(const StepRecord&)> on_step = nullptr;
  std::function<void(int64_t step, const EvalResult&)> on_eval = nullptr;
  std::function<void(int64_t step)> on_save = nullptr;  // after a training checkpoint is written
};

struct TrainingSummary {
  int64_t first_step = 0;  // nonzero when resumed
  int64_t steps = 0;       // steps completed in total
  int64_t total_steps = 0;
  bool stopped = false;  // a callback stopped the run early
  int64_t trainable_parameters = 0;
  int64_t model_parameters = 0;
  double trainable_share = 0;  // trainable / (model + trainable), as PEFT reports it
  double seconds = 0;
  int64_t samples = 0;  // examples processed by this run
  int64_t tokens = 0;
  double samples_per_s = 0;
  double tokens_per_s = 0;
  double final_loss = 0;  // the last step's
  std::optional<EvalResult> final_eval;
};

nlohmann::ordered_json summary_json(const TrainingSummary& summary);

// Optimizer steps of a run: iters, or ceil(epochs * batches per epoch / grad_accum).
int64_t total_training_steps(const TrainingOptions& options, size_t batches_per_epoch);

// The dropout seed of global micro-batch `index` of a run seeded with `seed`.
uint64_t micro_batch_seed(uint64_t seed, int64_t index);

// Summed loss over a split in batches of `batch_size` rows, per target token; perplexity is
// exp(loss).
EvalResult evaluate_split(TrainableModel& model, const DatasetSplit& split, int64_t batch_size,
                          int32_t pad_id);

TrainingSummary train(TrainableModel& model, const Dataset& dataset, const TrainingOptions& options,
                      const TrainingCallbacks& callbacks = {});

}  // namespace flow2
