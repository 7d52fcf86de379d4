// Models with a LoRA adapter attached reproduce PEFT's logits (logits_with_adapter in
// tests/data/models/<m>/lora_reference.safetensors), whatever the base weights' dtype.
#include <gtest/gtest.h>

#include "flow2/error.h"
#include "flow2/gguf_export.h"
#include "flow2/lora_peft.h"
#include "lora_fixture_support.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::model_path;

class LoraInference : public ::testing::TestWithParam<testing::LoraCase> {};

TEST_P(LoraInference, LogitsMatchPeft) {
  const testing::LoraCase& c = GetParam();
  Checkpoint checkpoint = open_checkpoint(model_path(c.model));
  LoraAdapter adapter = read_peft_adapter(model_path(c.model) / "lora", checkpoint.config);
  auto backend = make_cpu_backend();
  auto model = Model::load(checkpoint, *backend, &adapter);
  SafetensorsFile reference =
      SafetensorsFile::open(model_path(c.model) / "lora_reference.safetensors");
  const double error = testing::max_reference_logit_error(*model, reference);
  EXPECT_LE(error, c.tolerance);
  RecordProperty("max_abs_error", std::to_string(error));
  // Without the adapter the logits differ clearly: the adapter is really applied.
  auto plain = Model::load(checkpoint, *backend);
  EXPECT_GT(testing::max_reference_logit_error(*plain, reference), 100 * c.tolerance);
}

// An adapter written by flow2 and read back gives the same logits as the original.
TEST_P(LoraInference, RoundTripKeepsLogits) {
  const testing::LoraCase& c = GetParam();
  Checkpoint checkpoint = open_checkpoint(model_path(c.model));
  LoraAdapter adapter = read_peft_adapter(model_path(c.model) / "lora", checkpoint.config);
  testing::TempDir temp;
  write_peft_adapter(adapter, checkpoint.config, temp.path());
  LoraAdapter back = read_peft_adapter(temp.path(), checkpoint.config);
  auto backend = make_cpu_backend();
  auto original = Model::load(checkpoint, *backend, &adapter);
  auto reloaded = Model::load(checkpoint, *backend, &back);
  std::vector<int32_t> ids = {5, 17, 90, 3, 250, 41, 7};
  KVCache first = original->make_cache(1, 7), second = reloaded->make_cache(1, 7);
  EXPECT_EQ(backend->to_host(original->forward(ids, 1, first)),
            backend->to_host(reloaded->forward(ids, 1, second)));
}

INSTANTIATE_TEST_SUITE_P(Models, LoraInference, ::testing::ValuesIn(testing::lora_cases()),
                         [](const auto& info) {
                           std::string name = info.param.model;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Other base dtypes: the same weights in BF16, and quantized to Q8_0 in a GGUF file. The
// adapter's path stays float32, so only the base's rounding shows.
TEST(LoraInferenceDtypes, Bf16AndQuantizedBases) {
  SafetensorsFile reference =
      SafetensorsFile::open(model_path("tiny-llama") / "lora_reference.safetensors");
  LoraAdapter adapter = read_peft_adapter(model_path("tiny-llama") / "lora");
  auto backend = make_cpu_backend();
  Checkpoint bf16 = open_checkpoint(model_path("tiny-llama-bf16"));
  auto bf16_model = Model::load(bf16, *backend, &adapter);
  EXPECT_LE(testing::max_reference_logit_error(*bf16_model, reference), 0.05);

  testing::TempDir temp;
  export_gguf(open_checkpoint(model_path("tiny-llama")), temp / "q8.gguf",
              GgufExportOptions{DType::Q8_0});
  Checkpoint q8 = open_checkpoint(temp / "q8.gguf");
  auto with_adapter = Model::load(q8, *backend, &adapter);
  auto without = Model::load(q8, *backend);
  // Q8_0 of these random weights moves logits by a few percent of the largest (4.1).
  const double error = testing::max_reference_logit_error(*with_adapter, reference);
  EXPECT_LE(error, 0.12);
  EXPECT_LT(error, testing::max_reference_logit_error(*without, reference) / 10);
}

TEST(LoraInferenceErrors, AdapterOfAnotherModel) {
  LoraAdapter adapter = read_peft_adapter(model_path("tiny-llama") / "lora");
  auto backend = make_cpu_backend();
  EXPECT_THROW(Model::load(open_checkpoint(model_path("tiny-smol")), *backend, &adapter), Error);
}

}  // namespace
}  // namespace flow2
