// The training loop with a small model whose gradients are known exactly: a bigram softmax
// (logits of the next token = W[previous token] + b). Loss goes down, accumulation normalizes by
// the step's tokens, resuming reproduces an uninterrupted run bit for bit, the log is complete.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "flow2/error.h"
#include "flow2/progress_bar.h"
#include "flow2/training.h"
#include "test_support.h"

namespace flow2 {
namespace {

constexpr int kVocab = 12;

class BigramModel : public TrainableModel {
 public:
  explicit BigramModel(uint64_t seed)
      : w_(testing::random_values(kVocab * kVocab, seed, 0.1f)),
        b_(testing::random_values(kVocab, seed + 1, 0.1f)),
        grad_w_(w_.size()),
        grad_b_(b_.size()) {}

  std::vector<ParameterView> parameters() override {
    return {{"w", w_.data(), grad_w_.data(), w_.size()},
            {"b", b_.data(), grad_b_.data(), b_.size()}};
  }
  void zero_gradients() override {
    std::fill(grad_w_.begin(), grad_w_.end(), 0.0f);
    std::fill(grad_b_.begin(), grad_b_.end(), 0.0f);
  }
  LossSum accumulate_gradients(const Batch& batch, uint64_t step_seed) override {
    seeds.push_back(step_seed);
    LossSum sum = run(batch, true);
    calls.push_back(sum);
    return sum;
  }
  LossSum evaluate(const Batch& batch) override { return run(batch, false); }

  std::vector<float> w_, b_, grad_w_, grad_b_;
  std::vector<uint64_t> seeds;
  std::vector<LossSum> calls;

 private:
  LossSum run(const Batch& batch, bool backward) {
    LossSum sum;
    for (int64_t r = 0; r < batch.rows; ++r) {
      for (int64_t t = 1; t < batch.columns; ++t) {
        size_t cell = static_cast<size_t>(r * batch.columns + t);
        if (batch.label_mask[cell] != 1) continue;
        int32_t x = batch.ids[cell - 1], y = batch.ids[cell];
        float logits[kVocab], top = -INFINITY, total = 0;
        for (int v = 0; v < kVocab; ++v) {
          logits[v] = w_[static_cast<size_t>(x * kVocab + v)] + b_[static_cast<size_t>(v)];
          top = std::max(top, logits[v]);
        }
        for (int v = 0; v < kVocab; ++v) total += (logits[v] = std::exp(logits[v] - top));
        sum.loss -= std::log(logits[y] / total);
        ++sum.tokens;
        if (!backward) continue;
        for (int v = 0; v < kVocab; ++v) {
          float d = logits[v] / total - (v == y ? 1.0f : 0.0f);
          grad_w_[static_cast<size_t>(x * kVocab + v)] += d;
          grad_b_[static_cast<size_t>(v)] += d;
        }
      }
    }
    return sum;
  }
};

// Examples that mostly follow t -> (3t + 1) mod 12, of the given lengths, every token trained.
DatasetSplit patterned_split(const std::vector<size_t>& lengths, uint64_t seed) {
  DatasetSplit split;
  split.name = "train";
  std::mt19937_64 rng(seed);
  for (size_t length : lengths) {
    Example example;
    int32_t token = static_cast<int32_t>(rng() % kVocab);
    for (size_t t = 0; t < length; ++t) {
      example.tokens.push_back(token);
      example.label_mask.push_back(1);
      token = rng() % 5 == 0 ? static_cast<int32_t>(rng() % kVocab) : (3 * token + 1) % kVocab;
    }
    split.examples.push_back(std::move(example));
  }
  return split;
}

Dataset patterned_dataset(size_t train_count, size_t valid_count) {
  std::vector<size_t> train, valid;
  for (size_t i = 0; i < train_count; ++i) train.push_back(4 + (i * 5) % 11);
  for (size_t i = 0; i < valid_count; ++i) valid.push_back(6 + i % 4);
  Dataset dataset;
  dataset.train = patterned_split(train, 7);
  dataset.valid = patterned_split(valid, 8);
  dataset.valid.name = "valid";
  return dataset;
}

std::vector<nlohmann::json> read_log(const std::filesystem::path& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(TrainingLoop, LossDecreases) {
  Dataset dataset = patterned_dataset(16, 4);
  BigramModel model(1);
  double before = evaluate_split(model, dataset.valid, 4, 0).loss;
  TrainingOptions options;
  options.iters = 40;
  options.batch_size = 4;
  options.learning_rate = 0.05;
  std::vector<double> losses;
  TrainingSummary summary = train(model, dataset, options, {.on_step = [&](const StepRecord& r) {
                                    losses.push_back(r.loss);
                                    return true;
                                  }});
  ASSERT_EQ(losses.size(), 40u);
  EXPECT_LT(losses.back(), 0.6 * losses.front());
  ASSERT_TRUE(summary.final_eval.has_value());
  EXPECT_LT(summary.final_eval->loss, before - 0.5);
  EXPECT_NEAR(summary.final_eval->perplexity, std::exp(summary.final_eval->loss), 1e-9);
  EXPECT_EQ(summary.steps, 40);
  EXPECT_EQ(summary.trainable_parameters, kVocab * kVocab + kVocab);
}

// Lengths 3, 5, 9, 12: the two micro-batches of two hold 6 and 19 targets. Dividing the summed
// gradient by all 25 matches one batch of four; averaging per micro-batch would not.
TEST(TrainingLoop, AccumulationNormalizesByTheStepsTokens) {
  Dataset dataset;
  dataset.train = patterned_split({3, 5, 9, 12}, 3);
  TrainingOptions options;
  options.iters = 1;
  options.learning_rate = 0.1;
  options.max_grad_norm = 0;
  options.adamw.eps = 1.0;  // large: the update follows the gradient's scale, not just its sign
  auto run = [&](int64_t batch_size, int64_t grad_accum, BigramModel& model) {
    options.batch_size = batch_size;
    options.grad_accum = grad_accum;
    StepRecord last;
    train(model, dataset, options, {.on_step = [&](const StepRecord& r) {
            last = r;
            return true;
          }});
    return last;
  };
  BigramModel whole(5), accumulated(5);
  StepRecord one = run(4, 1, whole);
  StepRecord two = run(2, 2, accumulated);
  ASSERT_EQ(accumulated.calls.size(), 2u);
  EXPECT_EQ(accumulated.calls[0].tokens + accumulated.calls[1].tokens, 25);
  EXPECT_NE(accumulated.calls[0].tokens, accumulated.calls[1].tokens);
  EXPECT_EQ(one.target_tokens, 25);
  EXPECT_NEAR(two.loss, one.loss, 1e-12);
  EXPECT_NEAR(two.grad_norm, one.grad_norm, 1e-6 * one.grad_norm);
  for (size_t j = 0; j < whole.w_.size(); ++j) ASSERT_NEAR(accumulated.w_[j], whole.w_[j], 1e-6);
  for (size_t j = 0; j < whole.b_.size(); ++j) ASSERT_NEAR(accumulated.b_[j], whole.b_[j], 1e-6);
  // The per-micro-batch mean would have given another loss (and gradient).
  double mean_of_means = 0.5 * (accumulated.calls[0].loss / accumulated.calls[0].tokens +
                                accumulated.calls[1].loss / accumulated.calls[1].tokens);
  EXPECT_GT(std::abs(mean_of_means - two.loss), 1e-3);
}

TrainingOptions resumable_options(const std::filesystem::path& dir) {
  TrainingOptions options;
  options.iters = 10;
  options.batch_size = 2;
  options.grad_accum = 2;
  options.learning_rate = 0.05;
  options.schedule = LrSchedule::Cosine;
  options.warmup = 2;
  options.adamw.weight_decay = 0.01;
  options.max_grad_norm = 0.5;
  options.seed = 11;
  options.save_every = 3;
  options.eval_every = 4;
  options.output_dir = dir;
  return options;
}

// 10 examples in batches of 2: 5 micro-batches per epoch, so steps straddle epochs and the
// checkpoint at step 6 sits in the middle of the third epoch.
TEST(TrainingLoop, ResumeReproducesTheUninterruptedRun) {
  Dataset dataset = patterned_dataset(10, 3);
  testing::TempDir whole_dir, split_dir;
  BigramModel whole(9);
  train(whole, dataset, resumable_options(whole_dir.path()));

  BigramModel first(9);
  TrainingSummary stopped = train(first, dataset, resumable_options(split_dir.path()),
                                  {.on_step = [](const StepRecord& r) { return r.step < 7; }});
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(stopped.steps, 7);  // the checkpoint is from step 6; step 7 is done again

  BigramModel resumed(1234);  // its own start values are replaced by the checkpoint's
  TrainingOptions options = resumable_options(split_dir.path());
  options.resume = true;
  TrainingSummary summary = train(resumed, dataset, options);
  EXPECT_EQ(summary.first_step, 6);
  EXPECT_EQ(summary.steps, 10);

  EXPECT_EQ(std::memcmp(resumed.w_.data(), whole.w_.data(), whole.w_.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(resumed.b_.data(), whole.b_.data(), whole.b_.size() * sizeof(float)), 0);
  ASSERT_EQ(resumed.seeds.size(), 8u);
  EXPECT_TRUE(std::equal(resumed.seeds.begin(), resumed.seeds.end(), whole.seeds.begin() + 12));

  auto whole_log = read_log(whole_dir / "train_log.jsonl");
  auto split_log = read_log(split_dir / "train_log.jsonl");
  ASSERT_EQ(split_log.size(), whole_log.size());
  for (size_t i = 0; i < whole_log.size(); ++i) {
    EXPECT_EQ(split_log[i]["step"], whole_log[i]["step"]);
    for (const char* key : {"loss", "learning_rate", "grad_norm", "val_loss"}) {
      EXPECT_EQ(split_log[i].contains(key), whole_log[i].contains(key));
      if (whole_log[i].contains(key)) {
        EXPECT_EQ(split_log[i][key], whole_log[i][key]) << i << key;
      }
    }
  }
}

TEST(TrainingLoop, ResumeRefusesOtherOptions) {
  Dataset dataset = patterned_dataset(10, 0);
  testing::TempDir dir;
  BigramModel model(2);
  TrainingOptions options = resumable_options(dir.path());
  options.iters = 3;
  train(model, dataset, options);
  options.resume = true;
  options.learning_rate = 0.01;
  try {
    train(model, dataset, options);
    FAIL() << "resumed with another learning rate";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("learning_rate"), std::string::npos) << error.what();
  }
  // Settings outside TrainingOptions (the CLI's LoRA rank, say) are compared too.
  options.learning_rate = 0.05;
  options.fingerprint = {{"rank", 8}};
  try {
    train(model, dataset, options);
    FAIL() << "resumed with another fingerprint";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("fingerprint"), std::string::npos) << error.what();
  }
  testing::TempDir empty;
  options = resumable_options(empty.path());
  options.resume = true;
  EXPECT_THROW(train(model, dataset, options), Error);
}

TEST(TrainingLoop, LogAndSummaryHoldEveryRow) {
  Dataset dataset = patterned_dataset(10, 3);
  testing::TempDir dir;
  BigramModel model(4);
  TrainingOptions options = resumable_options(dir.path());
  options.model_parameters = 1000;
  std::vector<int64_t> eval_steps;
  train(model, dataset, options,
        {.on_eval = [&](int64_t step, const EvalResult&) { eval_steps.push_back(step); }});
  EXPECT_EQ(eval_steps, (std::vector<int64_t>{4, 8, 10}));
  auto rows = read_log(dir / "train_log.jsonl");
  std::vector<int64_t> steps, evals;
  for (const auto& row : rows) {
    if (row.contains("val_loss")) {
      evals.push_back(row["step"]);
      for (const char* key : {"val_loss", "val_perplexity"}) EXPECT_TRUE(row.contains(key));
      EXPECT_NEAR(row["val_perplexity"].get<double>(), std::exp(row["val_loss"].get<double>()),
                  1e-9);
      EXPECT_EQ(steps.back(), row["step"]);  // right after its step's row
      continue;
    }
    steps.push_back(row["step"]);
    for (const char* key :
         {"loss", "learning_rate", "grad_norm", "tokens_per_s", "peak_memory_bytes"}) {
      EXPECT_TRUE(row.contains(key)) << key;
    }
    EXPECT_GT(row["peak_memory_bytes"].get<int64_t>(), 0);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(evals, eval_steps);
  // Warmup: step 1 runs at factor 0, step 2 at 0.5.
  EXPECT_EQ(rows[0]["learning_rate"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(rows[1]["learning_rate"].get<double>(), 0.025);

  auto summary = nlohmann::json::parse(testing::read_file(dir / "train_summary.json"));
  EXPECT_EQ(summary["steps"], 10);
  EXPECT_EQ(summary["trainable_parameters"], kVocab * kVocab + kVocab);
  EXPECT_NEAR(summary["trainable_percent"].get<double>(), 100.0 * 156 / 1156, 1e-9);
  for (const char* key : {"train_seconds", "samples_per_s", "tokens_per_s", "final_train_loss",
                          "final_val_loss", "final_val_perplexity"}) {
    EXPECT_TRUE(summary.contains(key)) << key;
  }
  EXPECT_EQ(summary["samples"], 40);  // 10 steps x 2 micro-batches x 2 rows
  EXPECT_TRUE(std::filesystem::exists(dir / "training_state.safetensors"));
}

TEST(TrainingLoop, StepsFromEpochs) {
  TrainingOptions options;
  options.epochs = 3;
  options.grad_accum = 2;
  EXPECT_EQ(total_training_steps(options, 5), 8);  // 15 micro-batches, the last step has one
  options.iters = 4;
  EXPECT_EQ(total_training_steps(options, 5), 4);
  EXPECT_NE(micro_batch_seed(1, 0), micro_batch_seed(1, 1));
  EXPECT_NE(micro_batch_seed(1, 0), micro_batch_seed(2, 0));
}

TEST(ProgressBar, LinesAndDurations) {
  EXPECT_EQ(format_duration(83), "1:23");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(parse_progress_style("auto", false), ProgressStyle::Lines);
  EXPECT_EQ(parse_progress_style("auto", true), ProgressStyle::Bar);
  EXPECT_THROW(parse_progress_style("fancy", true), Error);
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  {
    ProgressBar bar(out, ProgressStyle::Lines);
    bar.step({.step = 1, .total_steps = 2, .loss = 2.5, .tokens = 100, .elapsed_s = 2.0});
    bar.eval(1, {.loss = 2.0, .perplexity = std::exp(2.0)});
    bar.finish();
  }
  std::fclose(out);
  std::string text(buffer, size);
  std::free(buffer);
  EXPECT_NE(text.find("step 1/2  loss 2.5000"), std::string::npos) << text;
  EXPECT_NE(text.find("50 tok/s  ETA 0:02"), std::string::npos) << text;
  EXPECT_NE(text.find("val_loss 2.0000"), std::string::npos) << text;
}

// What ProgressBar::update writes for a sequence of task events, in one style.
std::string drawn(ProgressStyle style, const std::vector<ProgressEvent>& events) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  {
    ProgressBar bar(out, style);
    for (const auto& event : events) bar.update(event, "bench: ");
  }  // the destructor ends a bar that is still drawn
  std::fclose(out);
  std::string text(buffer, size);
  std::free(buffer);
  return text;
}

TEST(ProgressBar, TaskEventsAsBarsOrLines) {
  const std::vector<ProgressEvent> events = {
      {"a: cold load", 0, 4},     {"a: warm load 1/2", 1, 4}, {"a failed: disk", 0, 0, true},
      {"a: warm load 2/2", 2, 4}, {"a: done", 4, 4},          {"b: cold load", 0, 4}};
  EXPECT_EQ(drawn(ProgressStyle::Lines, events),
            "bench: a: cold load\nbench: a: warm load 1/2\nbench: a failed: disk\n"
            "bench: a: warm load 2/2\nbench: a: done\nbench: b: cold load\n");
  EXPECT_EQ(drawn(ProgressStyle::Off, events), "");
  // Bars: redrawn with "\r" and cleared to the end of the line; a kept message and a finished
  // task end the line; the last, unfinished bar is ended by the destructor.
  const std::string empty(24, '.'), full(24, '#');
  EXPECT_EQ(drawn(ProgressStyle::Bar, events), "\r[" + empty +
                                                   "] bench: a: cold load\x1b[K"
                                                   "\r[######" +
                                                   std::string(18, '.') +
                                                   "] bench: a: warm load 1/2\x1b[K"
                                                   "\nbench: a failed: disk\n"
                                                   "\r[############" +
                                                   std::string(12, '.') +
                                                   "] bench: a: warm load 2/2\x1b[K"
                                                   "\r[" +
                                                   full +
                                                   "] bench: a: done\x1b[K\n"
                                                   "\r[" +
                                                   empty + "] bench: b: cold load\x1b[K\n");
}

}  // namespace
}  // namespace flow2
