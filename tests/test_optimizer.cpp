// AdamW against torch.optim.AdamW (the fixtures' after_step tensors) and a double-precision
// reference over many steps; gradient clipping as clip_grad_norm_; the schedules' formulas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "flow2/error.h"
#include "flow2/lr_schedule.h"
#include "flow2/optimizer.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::model_path;

class AdamWFixture : public ::testing::TestWithParam<std::string> {};

// One step from the saved adapter with the saved gradients gives torch's parameters: almost all
// bit for bit (the same float32 operations in the same order), the rest within 1e-6 of the
// step's operands (an update of about lr cancels most of some parameters, so the result itself
// can be far smaller than its rounding).
TEST_P(AdamWFixture, OneStepMatchesTorch) {
  auto adapter = SafetensorsFile::open(model_path(GetParam()) / "lora/adapter_model.safetensors");
  auto reference = SafetensorsFile::open(model_path(GetParam()) / "lora_reference.safetensors");
  std::vector<std::vector<float>> values, grads;
  std::vector<ParameterView> views;
  for (const auto& tensor : adapter.tensors()) {
    values.push_back(tensor.to_f32());
    grads.push_back(reference.get(tensor.name + ".grad").to_f32());
    ASSERT_EQ(values.back().size(), grads.back().size()) << tensor.name;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    views.push_back(
        {adapter.tensors()[i].name, values[i].data(), grads[i].data(), values[i].size()});
  }
  ASSERT_GT(views.size(), 0u);
  AdamW optimizer(views, {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01});
  std::vector<std::vector<float>> before = values;
  optimizer.step(1e-2);
  size_t total = 0, identical = 0;
  for (size_t i = 0; i < views.size(); ++i) {
    std::vector<float> expected = reference.get(views[i].name + ".after_step").to_f32();
    ASSERT_EQ(expected.size(), values[i].size());
    for (size_t j = 0; j < expected.size(); ++j) {
      double scale = std::max({std::abs(expected[j]), std::abs(before[i][j]), 1e-2f});
      ASSERT_NEAR(values[i][j], expected[j], 1e-6 * scale) << views[i].name << " [" << j << "]";
      ++total;
      identical += values[i][j] == expected[j];
    }
  }
  EXPECT_GT(static_cast<double>(identical), 0.99 * static_cast<double>(total));
  EXPECT_EQ(optimizer.state().step, 1);
}

INSTANTIATE_TEST_SUITE_P(Models, AdamWFixture,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-smol", "tiny-gpt2"));

// The textbook AdamW with decoupled decay, all in double.
struct ReferenceAdamW {
  std::vector<double> p, m, v;
  int64_t t = 0;
  void step(const std::vector<double>& g, double lr, double b1, double b2, double eps, double wd) {
    ++t;
    for (size_t j = 0; j < p.size(); ++j) {
      p[j] -= lr * wd * p[j];
      m[j] = b1 * m[j] + (1 - b1) * g[j];
      v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
      double m_hat = m[j] / (1 - std::pow(b1, static_cast<double>(t)));
      double v_hat = v[j] / (1 - std::pow(b2, static_cast<double>(t)));
      p[j] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

TEST(AdamW, ManyStepsFollowDoubleReference) {
  const size_t count = 300;
  std::vector<float> a = testing::random_values(count, 1), b = testing::random_values(50, 2);
  std::vector<float> grad_a(count), grad_b(50);
  AdamW optimizer({{"a", a.data(), grad_a.data(), count}, {"b", b.data(), grad_b.data(), 50}},
                  {.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
  ReferenceAdamW ref_a{
      {a.begin(), a.end()}, std::vector<double>(count), std::vector<double>(count)};
  ReferenceAdamW ref_b{{b.begin(), b.end()}, std::vector<double>(50), std::vector<double>(50)};
  for (int step = 0; step < 40; ++step) {
    // Gradients of varied scale, some steps tiny, so eps and the moments both matter.
    float scale = step % 7 == 3 ? 1e-4f : 1.0f;
    // Copied in: the views point at these buffers.
    std::vector<float> fresh_a = testing::random_values(count, 100 + step, scale);
    std::vector<float> fresh_b = testing::random_values(50, 900 + step, 3.0f);
    std::copy(fresh_a.begin(), fresh_a.end(), grad_a.begin());
    std::copy(fresh_b.begin(), fresh_b.end(), grad_b.begin());
    double lr = 1e-2 * (1.0 + 0.1 * step);
    optimizer.step(lr);
    ref_a.step({grad_a.begin(), grad_a.end()}, lr, 0.8, 0.99, 1e-6, 0.1);
    ref_b.step({grad_b.begin(), grad_b.end()}, lr, 0.8, 0.99, 1e-6, 0.1);
  }
  for (size_t j = 0; j < count; ++j)
    ASSERT_NEAR(a[j], ref_a.p[j], 2e-5 * std::abs(ref_a.p[j]) + 1e-6);
  for (size_t j = 0; j < 50; ++j) ASSERT_NEAR(b[j], ref_b.p[j], 2e-5 * std::abs(ref_b.p[j]) + 1e-6);
  EXPECT_EQ(optimizer.state().step, 40);
}

TEST(AdamW, ZeroGradientOnlyDecays) {
  std::vector<float> p{1.0f, -2.0f, 0.5f}, g(3, 0.0f);
  AdamW optimizer({{"p", p.data(), g.data(), 3}}, {.weight_decay = 0.5});
  optimizer.step(0.1);
  EXPECT_FLOAT_EQ(p[0], 0.95f);
  EXPECT_FLOAT_EQ(p[1], -1.9f);
  EXPECT_FLOAT_EQ(p[2], 0.475f);
}

TEST(AdamW, LoadStateChecksSizes) {
  std::vector<float> p(4), g(4);
  AdamW optimizer({{"p", p.data(), g.data(), 4}}, {});
  AdamWState state;
  state.exp_avg = {std::vector<float>(3)};
  state.exp_avg_sq = {std::vector<float>(3)};
  EXPECT_THROW(optimizer.load_state(state), Error);
}

TEST(ClipGradNorm, ScalesOnlyAboveTheLimit) {
  std::vector<float> p(3), g1{3.0f, 0.0f, 0.0f}, g2{4.0f};
  std::vector<ParameterView> views{{"a", p.data(), g1.data(), 3}, {"b", p.data(), g2.data(), 1}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(views, 10.0), 5.0);  // below: unchanged
  EXPECT_EQ(g1[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(views, 1.0), 5.0);  // reports the norm before clipping
  float factor = static_cast<float>(1.0 / (5.0 + 1e-6));
  EXPECT_EQ(g1[0], 3.0f * factor);
  EXPECT_EQ(g2[0], 4.0f * factor);
  EXPECT_NEAR(clip_grad_norm(views, 0.0), 1.0, 1e-6);  // 0: no clipping, norm only
}

TEST(LrSchedule, KnownValues) {
  // 10 warmup steps of 100.
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Constant, 0, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Constant, 5, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Constant, 50, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Linear, 5, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Linear, 10, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Linear, 55, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Linear, 100, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Linear, 120, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Cosine, 10, 10, 100), 1.0);
  EXPECT_NEAR(lr_factor(LrSchedule::Cosine, 55, 10, 100), 0.5, 1e-15);
  EXPECT_NEAR(lr_factor(LrSchedule::Cosine, 33, 10, 100), 0.5 * (1 + std::cos(M_PI * 23 / 90)),
              1e-15);
  EXPECT_NEAR(lr_factor(LrSchedule::Cosine, 100, 10, 100), 0.0, 1e-15);
  // No warmup: the first step already uses the full rate.
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Cosine, 0, 0, 4), 1.0);
  EXPECT_NEAR(lr_factor(LrSchedule::Cosine, 2, 0, 4), 0.5, 1e-15);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::Linear, 1, 0, 4), 0.75);
}

TEST(LrSchedule, Names) {
  EXPECT_EQ(parse_lr_schedule("cosine"), LrSchedule::Cosine);
  EXPECT_EQ(lr_schedule_name(LrSchedule::Linear), "linear");
  EXPECT_THROW(parse_lr_schedule("step"), Error);
}

}  // namespace
}  // namespace flow2
