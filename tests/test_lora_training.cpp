// LoRA / QLoRA training against PEFT: the loss and every LoRA gradient of the fixture adapters
// on the fixture batch (lora_reference.safetensors), gradient checkpointing, padding, dropout,
// and central finite differences (F32 and quantized bases, the default model when present).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "flow2/lora_training.h"
#include "flow2/optimizer.h"
#include "flow2/safetensors.h"
#include "lora_training_support.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::gradients;
using testing::model_path;

struct Fixture {
  std::string name;
  LoraAdapter adapter;
  Checkpoint checkpoint;
  Batch batch;
};

Fixture load(const std::string& name) {
  const std::string dir = model_path(name).string();
  return Fixture{name, testing::read_fixture_adapter(dir + "/lora"), open_checkpoint(dir),
                 testing::reference_batch(dir + "/lora_reference.safetensors")};
}

class LoraTrainingFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraTrainingFixture, LossAndGradientsMatchPeft) {
  Fixture f = load(GetParam());
  SafetensorsFile reference =
      SafetensorsFile::open(model_path(GetParam()) / "lora_reference.safetensors");
  auto model = make_lora_training_model(f.checkpoint, f.adapter, {});
  model->zero_gradients();
  LossSum sum = model->accumulate_gradients(f.batch, 1);
  ASSERT_GT(sum.tokens, 0);
  const double loss = sum.loss / sum.tokens;
  const double expected_loss = reference.get("loss").to_f32()[0];
  EXPECT_NEAR(loss, expected_loss, 1e-5 * expected_loss) << GetParam();

  double worst_norm = 0.0, worst_element = 0.0;
  const auto grads = gradients(*model);
  ASSERT_EQ(grads.size(), 2 * f.adapter.modules.size());
  for (const auto& [name, grad] : grads) {
    std::vector<float> expected = reference.get(name + ".grad").to_f32();
    ASSERT_EQ(expected.size(), grad.size()) << name;
    double diff2 = 0.0, ref2 = 0.0, ref_max = 0.0;
    for (float e : expected) ref_max = std::max(ref_max, std::abs(double(e)));
    double element = 0.0;
    for (size_t i = 0; i < grad.size(); ++i) {
      const double d = grad[i] / sum.tokens - expected[i];
      diff2 += d * d;
      ref2 += double(expected[i]) * expected[i];
      // Relative per element, with a floor of 1% of the tensor's largest gradient.
      element =
          std::max(element, std::abs(d) / std::max(std::abs(double(expected[i])), 1e-2 * ref_max));
    }
    const double norm_error = std::sqrt(diff2 / ref2);
    EXPECT_LT(norm_error, 1e-3) << name;
    EXPECT_LT(element, 1e-3) << name;
    worst_norm = std::max(worst_norm, norm_error);
    worst_element = std::max(worst_element, element);
  }
  std::printf(
      "%s: loss %.7f vs PEFT %.7f (rel %.1e); gradients: worst norm-wise rel %.1e, "
      "element-wise %.1e\n",
      GetParam().c_str(), loss, expected_loss, std::abs(loss / expected_loss - 1), worst_norm,
      worst_element);
}

// The whole step as PEFT's reference took it: gradients of the mean loss, one AdamW step
// (lr 1e-2, weight decay 0.01), then the loss again.
TEST_P(LoraTrainingFixture, OneAdamWStepMatchesPeft) {
  Fixture f = load(GetParam());
  SafetensorsFile reference =
      SafetensorsFile::open(model_path(GetParam()) / "lora_reference.safetensors");
  auto model = make_lora_training_model(f.checkpoint, f.adapter, {});
  model->zero_gradients();
  const LossSum before = model->accumulate_gradients(f.batch, 1);
  std::vector<ParameterView> views = model->parameters();
  for (ParameterView& view : views) {
    for (size_t i = 0; i < view.size; ++i) view.grad[i] /= static_cast<float>(before.tokens);
  }
  AdamW optimizer(views, AdamWOptions{});
  optimizer.step(1e-2);
  double worst = 0.0;
  for (const ParameterView& view : views) {
    std::vector<float> expected = reference.get(view.name + ".after_step").to_f32();
    ASSERT_EQ(expected.size(), view.size) << view.name;
    for (size_t i = 0; i < view.size; ++i) {
      // Relative to the step's scale: an update of ~lr may cancel most of a parameter.
      const double scale = std::max({std::abs(double(expected[i])), 1e-2});
      worst = std::max(worst, std::abs(view.value[i] - expected[i]) / scale);
    }
  }
  EXPECT_LT(worst, 1e-4) << GetParam();
  const LossSum after = model->evaluate(f.batch);
  const double loss_after = after.loss / after.tokens;
  const double expected_after = reference.get("loss_after_step").to_f32()[0];
  EXPECT_NEAR(loss_after, expected_after, 1e-5 * expected_after) << GetParam();
  std::printf("%s: after one AdamW step: parameters worst rel %.1e; loss %.7f vs PEFT %.7f\n",
              GetParam().c_str(), worst, loss_after, expected_after);
}

TEST_P(LoraTrainingFixture, CheckpointingGivesIdenticalGradients) {
  Fixture f = load(GetParam());
  LoraAdapter copy = f.adapter;
  auto plain = make_lora_training_model(f.checkpoint, f.adapter, {});
  auto checkpointed = make_lora_training_model(f.checkpoint, copy, {.grad_checkpoint = true});
  LossSum a = plain->accumulate_gradients(f.batch, 3);
  LossSum b = checkpointed->accumulate_gradients(f.batch, 3);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(gradients(*plain), gradients(*checkpointed));
  // evaluate: the same loss without gradients.
  EXPECT_EQ(plain->evaluate(f.batch).loss, a.loss);
}

TEST_P(LoraTrainingFixture, PaddingDoesNotChangeTheResult) {
  Fixture f = load(GetParam());
  auto model = make_lora_training_model(f.checkpoint, f.adapter, {});
  LossSum base = model->accumulate_gradients(f.batch, 0);
  auto base_grads = gradients(*model);
  // Seven more columns of padding on every row.
  Batch wide = f.batch;
  const int64_t extra = 7, columns = f.batch.columns + extra;
  wide.columns = columns;
  wide.ids.assign(wide.rows * columns, 0);
  wide.label_mask.assign(wide.rows * columns, 0);
  wide.segments.assign(wide.rows * columns, 0);
  for (int64_t r = 0; r < wide.rows; ++r) {
    for (int64_t t = 0; t < f.batch.columns; ++t) {
      wide.ids[r * columns + t] = f.batch.ids[r * f.batch.columns + t];
      wide.label_mask[r * columns + t] = f.batch.label_mask[r * f.batch.columns + t];
      wide.segments[r * columns + t] = f.batch.segments[r * f.batch.columns + t];
    }
  }
  model->zero_gradients();
  LossSum padded = model->accumulate_gradients(wide, 0);
  EXPECT_EQ(padded.tokens, base.tokens);
  EXPECT_NEAR(padded.loss, base.loss, 1e-6 * base.loss);
  for (const auto& [name, grad] : gradients(*model)) {
    const auto& expected = base_grads.at(name);
    double scale = 0.0;
    for (float e : expected) scale = std::max(scale, std::abs(double(e)));
    EXPECT_LT(testing::max_abs_difference(grad, expected), 1e-5 * scale) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, LoraTrainingFixture,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-smol", "tiny-gpt2"));

TEST(LoraTraining, DropoutIsSeededAndReproducible) {
  Fixture f = load("tiny-llama");
  LossSum none =
      make_lora_training_model(f.checkpoint, f.adapter, {})->accumulate_gradients(f.batch, 5);
  f.adapter.config.dropout = 0.1f;
  auto model = make_lora_training_model(f.checkpoint, f.adapter, {});
  LossSum first = model->accumulate_gradients(f.batch, 5);
  auto first_grads = gradients(*model);
  model->zero_gradients();
  LossSum again = model->accumulate_gradients(f.batch, 5);
  EXPECT_EQ(first.loss, again.loss);
  EXPECT_EQ(first_grads, gradients(*model));
  LossSum other = model->accumulate_gradients(f.batch, 6);
  EXPECT_NE(other.loss, first.loss);
  EXPECT_NE(first.loss, none.loss);
  // Evaluation never drops.
  EXPECT_EQ(model->evaluate(f.batch).loss, none.loss);
  // Checkpointing regenerates the same masks.
  LoraAdapter copy = f.adapter;
  auto checkpointed = make_lora_training_model(f.checkpoint, copy, {.grad_checkpoint = true});
  EXPECT_EQ(checkpointed->accumulate_gradients(f.batch, 5).loss, first.loss);
  EXPECT_EQ(gradients(*checkpointed), first_grads);
}

TEST(LoraTraining, PackedSegmentsEqualSeparateRows) {
  // Two examples packed in one row train exactly as the same two in rows of their own.
  Fixture f = load("tiny-qwen2");
  const int64_t n = f.batch.columns;
  const int32_t second_length = f.batch.lengths[1];
  Batch packed;
  packed.rows = 1;
  packed.columns = n + second_length;
  for (int64_t t = 0; t < n; ++t) {
    packed.ids.push_back(f.batch.ids[t]);
    packed.label_mask.push_back(f.batch.label_mask[t]);
    packed.segments.push_back(1);
  }
  for (int64_t t = 0; t < second_length; ++t) {
    packed.ids.push_back(f.batch.ids[n + t]);
    packed.label_mask.push_back(f.batch.label_mask[n + t]);
    packed.segments.push_back(2);
  }
  packed.lengths = {static_cast<int32_t>(packed.columns)};
  LoraAdapter copy = f.adapter;
  auto separate = make_lora_training_model(f.checkpoint, f.adapter, {});
  auto together = make_lora_training_model(f.checkpoint, copy, {});
  LossSum a = separate->accumulate_gradients(f.batch, 0);
  LossSum b = together->accumulate_gradients(packed, 0);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NEAR(a.loss, b.loss, 1e-6 * a.loss);
  auto expected = gradients(*separate);
  for (const auto& [name, grad] : gradients(*together)) {
    double scale = 0.0;
    for (float e : expected.at(name)) scale = std::max(scale, std::abs(double(e)));
    EXPECT_LT(testing::max_abs_difference(grad, expected.at(name)), 1e-5 * scale) << name;
  }
}

// Central differences of the summed loss along `count` directions: single elements of random
// parameters and the gradient's own direction. Returns the worst relative error.
// Relative errors use max(|analytic|, floor): float32 forward passes leave some noise.
double finite_difference_error(TrainableModel& model, const Batch& batch, int count, uint64_t seed,
                               float step, double floor = 1e-2) {
  model.zero_gradients();
  model.accumulate_gradients(batch, 0);
  std::vector<ParameterView> params = model.parameters();
  std::mt19937_64 rng(seed);
  double worst = 0.0;
  for (int check = 0; check <= count; ++check) {
    // direction: (parameter index, element) pairs with weights; the last check follows the
    // whole gradient.
    std::vector<std::vector<float>> direction(params.size());
    double analytic = 0.0;
    for (size_t p = 0; p < params.size(); ++p) direction[p].assign(params[p].size, 0.0f);
    if (check < count) {
      const size_t p = rng() % params.size();
      // The element with the largest gradient among a few random ones (a visible effect).
      size_t best = rng() % params[p].size;
      for (int tries = 0; tries < 64; ++tries) {
        size_t i = rng() % params[p].size;
        if (std::abs(params[p].grad[i]) > std::abs(params[p].grad[best])) best = i;
      }
      direction[p][best] = 1.0f;
    } else {
      double norm = 0.0;
      for (auto& view : params) {
        for (size_t i = 0; i < view.size; ++i) norm += double(view.grad[i]) * view.grad[i];
      }
      for (size_t p = 0; p < params.size(); ++p) {
        for (size_t i = 0; i < params[p].size; ++i) {
          direction[p][i] = static_cast<float>(params[p].grad[i] / std::sqrt(norm));
        }
      }
    }
    for (size_t p = 0; p < params.size(); ++p) {
      for (size_t i = 0; i < params[p].size; ++i)
        analytic += double(direction[p][i]) * params[p].grad[i];
    }
    auto shifted_loss = [&](float sign) {
      std::vector<std::vector<float>> saved(params.size());
      for (size_t p = 0; p < params.size(); ++p) {
        saved[p].assign(params[p].value, params[p].value + params[p].size);
        for (size_t i = 0; i < params[p].size; ++i)
          params[p].value[i] += sign * step * direction[p][i];
      }
      double loss = model.evaluate(batch).loss;
      for (size_t p = 0; p < params.size(); ++p) {
        std::copy(saved[p].begin(), saved[p].end(), params[p].value);
      }
      return loss;
    };
    const double numeric = (shifted_loss(1.0f) - shifted_loss(-1.0f)) / (2.0 * step);
    const double error = std::abs(numeric - analytic) / std::max(std::abs(analytic), floor);
    worst = std::max(worst, error);
    std::printf("  d/d%s: analytic %.6f numeric %.6f\n",
                check < count ? "element" : "(gradient direction)", analytic, numeric);
  }
  return worst;
}

TEST(LoraTraining, GradientsMatchFiniteDifferences) {
  Fixture f = load("tiny-smol");
  auto model = make_lora_training_model(f.checkpoint, f.adapter, {});
  double error = finite_difference_error(*model, f.batch, 6, 11, 1e-2f);
  std::printf("tiny-smol F32 finite differences: worst rel error %.1e\n", error);
  EXPECT_LT(error, 2e-2);
}

TEST(LoraTraining, QuantizedBasesMatchFiniteDifferences) {
  const std::string dir = model_path("tiny-llama").string();
  for (DType dtype : {DType::Q8_0, DType::Q4_1}) {
    Checkpoint checkpoint = testing::quantized_checkpoint(dir, dtype);
    ASSERT_EQ(checkpoint.weights.get("model.layers.0.mlp.down_proj.weight").dtype, dtype);
    LoraAdapter adapter = testing::read_fixture_adapter(dir + "/lora");
    Batch batch = testing::reference_batch(dir + "/lora_reference.safetensors");
    auto model = make_lora_training_model(checkpoint, adapter, {});
    double error = finite_difference_error(*model, batch, 6, 13, 1e-2f);
    std::printf("tiny-llama %s finite differences: worst rel error %.1e\n",
                std::string(dtype_name(dtype)).c_str(), error);
    EXPECT_LT(error, 2e-2) << dtype_name(dtype);
  }
}

std::string default_model() {
  std::string command = std::string(FLOW2_SOURCE_DIR) + "/scripts/fetch-default-model";
  std::FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  char buffer[512];
  while (pipe && std::fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  int status = pipe ? pclose(pipe) : -1;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return status == 0 ? output : std::string();
}

TEST(LoraTraining, DefaultModelQ4_1MatchesFiniteDifferences) {
  const std::string path = default_model();
  if (path.empty()) GTEST_SKIP() << "the default model is not downloaded (fetch-default-model)";
  Checkpoint checkpoint = open_checkpoint(path);
  const ModelConfig& c = checkpoint.config;
  // Rank 8 on q_proj and v_proj of the last four layers, B non-zero so A has gradients too.
  LoraAdapter adapter;
  adapter.config.rank = 8;
  adapter.config.alpha = 16;
  for (int64_t layer = c.num_layers - 4; layer < c.num_layers; ++layer) {
    for (const char* target : {"q_proj", "v_proj"}) {
      LoraModule module;
      module.layer = layer;
      module.target = std::string("self_attn.") + target;
      module.name = fmt::format("base_model.model.model.layers.{}.{}", layer, module.target);
      module.in = c.hidden_size;
      module.out = target[0] == 'q' ? c.q_dim() : c.kv_dim();
      module.a = testing::random_values(8 * module.in, layer * 2 + 1, 0.05f);
      module.b = testing::random_values(module.out * 8, layer * 2 + 2, 0.05f);
      adapter.modules.push_back(std::move(module));
    }
  }
  Batch batch;
  batch.rows = 2;
  batch.columns = 24;
  std::mt19937 rng(7);
  for (int i = 0; i < 48; ++i) {
    batch.ids.push_back(static_cast<int32_t>(rng() % 1000 + 100));
    batch.label_mask.push_back(i % 24 >= 4 ? 1 : 0);
  }
  auto model = make_lora_training_model(checkpoint, adapter, {});
  double error = finite_difference_error(*model, batch, 3, 17, 2e-2f, 0.1);
  std::printf("SmolLM2 Q4_1 finite differences: worst rel error %.1e\n", error);
  EXPECT_LT(error, 3e-2);
}

}  // namespace
}  // namespace flow2
