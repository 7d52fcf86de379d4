// The training loop with the real LoRA trainer on tiny-llama: a run stopped after its checkpoint
// and resumed ends with the same adapter, bit for bit, as the run that was never stopped
// (dropout on, so the step seeds must line up too), and the loss goes down.
#include <gtest/gtest.h>

#include <cstring>

#include "dataset_support.h"
#include "flow2/lora_training.h"
#include "flow2/model.h"
#include "flow2/training.h"

namespace flow2 {
namespace {

LoraAdapter fresh_adapter(const ModelConfig& config) {
  LoraConfig lora;
  lora.rank = 2;
  lora.alpha = 4;
  lora.dropout = 0.1f;
  lora.targets = {"q_proj", "v_proj", "down_proj"};
  return init_lora_adapter(lora, config, 7);
}

TrainingOptions options_for(const std::filesystem::path& dir) {
  TrainingOptions options;
  options.iters = 5;
  options.batch_size = 2;
  options.grad_accum = 2;
  options.learning_rate = 2e-2;
  options.schedule = LrSchedule::Linear;
  options.warmup = 1;
  options.adamw.weight_decay = 0.01;
  options.seed = 3;
  options.save_every = 2;
  options.output_dir = dir;
  return options;
}

TEST(TrainingLoraResume, ResumedRunEqualsTheUninterruptedOne) {
  testing::TinyChatModel tiny;
  DatasetOptions data_options = tiny.options();
  data_options.max_seq_len = 48;
  Dataset dataset = tiny.load(std::string(FLOW2_SOURCE_DIR) + "/examples/data", data_options);
  Checkpoint checkpoint = open_checkpoint(testing::model_path("tiny-llama"));

  testing::TempDir whole_dir, split_dir;
  LoraAdapter whole = fresh_adapter(checkpoint.config);
  auto whole_model = make_lora_training_model(checkpoint, whole, {});
  std::vector<double> losses;
  TrainingCallbacks record;
  record.on_step = [&](const StepRecord& r) {
    losses.push_back(r.loss);
    return true;
  };
  train(*whole_model, dataset, options_for(whole_dir.path()), record);

  LoraAdapter first = fresh_adapter(checkpoint.config);
  auto first_model = make_lora_training_model(checkpoint, first, {});
  TrainingCallbacks stop;
  stop.on_step = [](const StepRecord& r) { return r.step < 3; };
  train(*first_model, dataset, options_for(split_dir.path()), stop);

  LoraAdapter resumed = fresh_adapter(checkpoint.config);
  auto resumed_model = make_lora_training_model(checkpoint, resumed, {});
  TrainingOptions options = options_for(split_dir.path());
  options.resume = true;
  EXPECT_EQ(train(*resumed_model, dataset, options).first_step, 2);

  ASSERT_EQ(resumed.modules.size(), whole.modules.size());
  for (size_t i = 0; i < whole.modules.size(); ++i) {
    const auto &a = resumed.modules[i], &b = whole.modules[i];
    ASSERT_EQ(a.a.size(), b.a.size());
    EXPECT_EQ(std::memcmp(a.a.data(), b.a.data(), a.a.size() * sizeof(float)), 0) << a.name;
    EXPECT_EQ(std::memcmp(a.b.data(), b.b.data(), a.b.size() * sizeof(float)), 0) << a.name;
  }
  ASSERT_EQ(losses.size(), 5u);
  EXPECT_LT(losses.back(), losses.front());
}

}  // namespace
}  // namespace flow2
