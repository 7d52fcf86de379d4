#include <cmath>

#include "flow2/training.h"

namespace flow2 {

nlohmann::ordered_json summary_json(const TrainingSummary& summary) {
  nlohmann::ordered_json out;
  out["steps"] = summary.steps;
  out["total_steps"] = summary.total_steps;
  if (summary.first_step > 0) out["resumed_from_step"] = summary.first_step;
  out["stopped_early"] = summary.stopped;
  out["trainable_parameters"] = summary.trainable_parameters;
  out["model_parameters"] = summary.model_parameters;
  out["trainable_percent"] = 100.0 * summary.trainable_share;
  out["train_seconds"] = summary.seconds;
  out["samples"] = summary.samples;
  out["tokens"] = summary.tokens;
  out["samples_per_s"] = summary.samples_per_s;
  out["tokens_per_s"] = summary.tokens_per_s;
  out["final_train_loss"] = summary.final_loss;
  if (summary.final_eval) {
    out["final_val_loss"] = summary.final_eval->loss;
    out["final_val_perplexity"] = summary.final_eval->perplexity;
  }
  return out;
}

}  // namespace flow2
