#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#include "flow2/atomic_file.h"
#include "flow2/batcher.h"
#include "flow2/error.h"
#include "flow2/training.h"
#include "train_log.h"
#include "training_checkpoint.h"

namespace flow2 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t peak_memory_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void check_options(const TrainingOptions& options, const DatasetSplit& train) {
  check(options.batch_size > 0, "batch size must be positive, got {}", options.batch_size);
  check(options.grad_accum > 0, "grad_accum must be positive, got {}", options.grad_accum);
  check(options.iters > 0 || options.epochs > 0, "set a positive number of epochs or iters");
  check(options.iters >= 0 && options.warmup >= 0, "iters and warmup must not be negative");
  check(options.learning_rate >= 0, "the learning rate must not be negative");
  check(!train.empty(), "the train split has no examples");
  check(!options.resume || !options.output_dir.empty(), "resuming needs the output directory");
}

// What decides the trajectory; a resumed run must agree on all of it.
nlohmann::json trajectory_options(const TrainingOptions& options, int64_t total_steps,
                                  size_t train_examples) {
  nlohmann::json out = {{"epochs", options.epochs},
                        {"iters", options.iters},
                        {"total_steps", total_steps},
                        {"batch_size", options.batch_size},
                        {"grad_accum", options.grad_accum},
                        {"learning_rate", options.learning_rate},
                        {"schedule", lr_schedule_name(options.schedule)},
                        {"warmup", options.warmup},
                        {"beta1", options.adamw.beta1},
                        {"beta2", options.adamw.beta2},
                        {"eps", options.adamw.eps},
                        {"weight_decay", options.adamw.weight_decay},
                        {"max_grad_norm", options.max_grad_norm},
                        {"seed", options.seed},
                        {"pad_id", options.pad_id},
                        {"pack", options.pack},
                        {"train_examples", train_examples}};
  if (!options.fingerprint.is_null()) out["fingerprint"] = options.fingerprint;
  return out;
}

void check_same_options(const nlohmann::json& saved, const nlohmann::json& now,
                        const std::filesystem::path& path) {
  std::string differences;
  for (const auto& [key, value] : now.items()) {
    if (!saved.contains(key) || saved[key] != value) {
      differences +=
          fmt::format("{}{} (checkpoint {}, now {})", differences.empty() ? "" : ", ", key,
                      saved.contains(key) ? saved[key].dump() : "absent", value.dump());
    }
  }
  check(differences.empty(), "cannot resume from {}: options differ: {}", path.string(),
        differences);
}

// The micro-batches of the run, epoch after epoch, addressed by their global index.
class MicroBatchStream {
 public:
  MicroBatchStream(const Batcher& batcher) : batcher_(batcher) {}
  Batch get(int64_t index) {
    auto per_epoch = static_cast<int64_t>(batcher_.batches_per_epoch());
    int64_t epoch = index / per_epoch;
    if (epoch != epoch_) {
      plans_ = batcher_.plan_epoch(static_cast<uint64_t>(epoch));
      epoch_ = epoch;
    }
    return batcher_.assemble(plans_[static_cast<size_t>(index % per_epoch)]);
  }

 private:
  const Batcher& batcher_;
  int64_t epoch_ = -1;
  std::vector<BatchPlan> plans_;
};

int64_t parameter_count(const std::vector<ParameterView>& parameters) {
  int64_t count = 0;
  for (const auto& p : parameters) count += static_cast<int64_t>(p.size);
  return count;
}

}  // namespace

int64_t total_training_steps(const TrainingOptions& options, size_t batches_per_epoch) {
  if (options.iters > 0) return options.iters;
  int64_t micro_batches = options.epochs * static_cast<int64_t>(batches_per_epoch);
  return (micro_batches + options.grad_accum - 1) / options.grad_accum;
}

uint64_t micro_batch_seed(uint64_t seed, int64_t index) {
  return splitmix64(seed ^ splitmix64(static_cast<uint64_t>(index)));
}

TrainingSummary train(TrainableModel& model, const Dataset& dataset, const TrainingOptions& options,
                      const TrainingCallbacks& callbacks) {
  check_options(options, dataset.train);
  Batcher batcher(dataset.train, {.batch_size = options.batch_size,
                                  .pad_id = options.pad_id,
                                  .seed = options.seed,
                                  .pack = options.pack});
  const auto per_epoch = static_cast<int64_t>(batcher.batches_per_epoch());
  const int64_t total_steps = total_training_steps(options, batcher.batches_per_epoch());
  const nlohmann::json trajectory =
      trajectory_options(options, total_steps, dataset.train.examples.size());
  std::vector<ParameterView> parameters = model.parameters();
  AdamW optimizer(parameters, options.adamw);

  TrainingSummary summary;
  summary.total_steps = total_steps;
  summary.trainable_parameters = parameter_count(parameters);
  summary.model_parameters = options.model_parameters;
  summary.trainable_share = static_cast<double>(summary.trainable_parameters) /
                            static_cast<double>(std::max<int64_t>(
                                1, options.model_parameters + summary.trainable_parameters));

  const bool has_output = !options.output_dir.empty();
  std::optional<int64_t> resume_step;
  if (options.resume) {
    auto path = training_state_path(options.output_dir);
    TrainingCheckpoint checkpoint = load_training_checkpoint(path, parameters);
    check_same_options(checkpoint.options, trajectory, path);
    check(checkpoint.position.micro_batch == checkpoint.position.step * options.grad_accum,
          "{}: inconsistent position (step {}, micro-batch {})", path.string(),
          checkpoint.position.step, checkpoint.position.micro_batch);
    for (size_t i = 0; i < parameters.size(); ++i) {
      std::copy(checkpoint.values[i].begin(), checkpoint.values[i].end(), parameters[i].value);
    }
    optimizer.load_state(std::move(checkpoint.optimizer));
    resume_step = checkpoint.position.step;
    summary.first_step = checkpoint.position.step;
  }
  if (has_output) std::filesystem::create_directories(options.output_dir);
  std::optional<TrainLog> log;
  if (has_output) log.emplace(options.output_dir / "train_log.jsonl", resume_step);

  const auto start = Clock::now();
  int64_t step = summary.first_step;
  int64_t micro = step * options.grad_accum;
  MicroBatchStream stream(batcher);
  while (step < total_steps) {
    const auto step_start = Clock::now();
    model.zero_gradients();
    LossSum sum;
    int64_t tokens = 0;
    for (int64_t a = 0; a < options.grad_accum; ++a, ++micro) {
      Batch batch = stream.get(micro);
      LossSum part = model.accumulate_gradients(batch, micro_batch_seed(options.seed, micro));
      sum.loss += part.loss;
      sum.tokens += part.tokens;
      for (int32_t length : batch.lengths) tokens += length;
      for (const auto& row : batch.plan.rows) summary.samples += static_cast<int64_t>(row.size());
    }
    // The loss of the step is the mean over all its target tokens (transformers' fix for
    // gradient accumulation): every micro-batch's summed gradient is divided by the total.
    if (sum.tokens > 0) {
      const auto divisor = static_cast<float>(sum.tokens);
      for (const auto& p : parameters) {
        for (size_t j = 0; j < p.size; ++j) p.grad[j] /= divisor;
      }
    }
    StepRecord record;
    record.grad_norm = clip_grad_norm(parameters, options.max_grad_norm);
    record.learning_rate =
        options.learning_rate * lr_factor(options.schedule, step, options.warmup, total_steps);
    optimizer.step(record.learning_rate);
    ++step;
    summary.tokens += tokens;

    record.step = step;
    record.total_steps = total_steps;
    record.epoch = static_cast<double>(micro) / static_cast<double>(per_epoch);
    record.loss = sum.tokens > 0 ? sum.loss / static_cast<double>(sum.tokens) : 0.0;
    record.target_tokens = sum.tokens;
    record.tokens = tokens;
    double step_seconds = seconds_since(step_start);
    record.tokens_per_s = step_seconds > 0 ? static_cast<double>(tokens) / step_seconds : 0.0;
    record.peak_memory_bytes = peak_memory_bytes();
    record.elapsed_s = seconds_since(start);
    record.first_step = summary.first_step;
    summary.final_loss = record.loss;
    if (log) {
      log->write({{"step", record.step},
                  {"epoch", record.epoch},
                  {"loss", record.loss},
                  {"learning_rate", record.learning_rate},
                  {"grad_norm", record.grad_norm},
                  {"tokens", record.tokens},
                  {"tokens_per_s", record.tokens_per_s},
                  {"peak_memory_bytes", record.peak_memory_bytes}});
    }
    bool keep_going = callbacks.on_step ? callbacks.on_step(record) : true;

    bool last = step == total_steps;
    if (!dataset.valid.empty() &&
        (last || (options.eval_every > 0 && step % options.eval_every == 0))) {
      EvalResult eval = evaluate_split(model, dataset.valid, options.batch_size, options.pad_id);
      if (log) {
        log->write({{"step", step},
                    {"val_loss", eval.loss},
                    {"val_perplexity", eval.perplexity},
                    {"val_tokens", eval.tokens}});
      }
      if (callbacks.on_eval) callbacks.on_eval(step, eval);
      summary.final_eval = eval;
    }
    if (has_output && options.save_every > 0 && step % options.save_every == 0) {
      TrainingPosition position{.step = step,
                                .micro_batch = micro,
                                .epoch = micro / per_epoch,
                                .batch = micro % per_epoch,
                                .seed = options.seed};
      save_training_checkpoint(training_state_path(options.output_dir), parameters,
                               optimizer.state(), position, trajectory);
      if (callbacks.on_save) callbacks.on_save(step);
    }
    if (!keep_going && !last) {
      summary.stopped = true;
      break;
    }
  }
  summary.steps = step;
  summary.seconds = seconds_since(start);
  if (summary.seconds > 0) {
    summary.samples_per_s = static_cast<double>(summary.samples) / summary.seconds;
    summary.tokens_per_s = static_cast<double>(summary.tokens) / summary.seconds;
  }
  if (has_output) {
    write_file_atomically(options.output_dir / "train_summary.json",
                          summary_json(summary).dump(2) + "\n");
  }
  return summary;
}

}  // namespace flow2
