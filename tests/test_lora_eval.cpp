// flow2 eval: the mean cross-entropy of a split's trained tokens equals a direct computation
// from Model::forward logits, and with the fixture adapter it is PEFT's training loss.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "dataset_support.h"
#include "flow2/evaluate.h"
#include "flow2/lora_peft.h"
#include "lora_fixture_support.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::model_path;

// The slow way: each example over all its tokens, log-softmax in double for every target.
std::pair<double, int64_t> reference_loss(Model& model, const DatasetSplit& split) {
  double total = 0;
  int64_t tokens = 0;
  const size_t vocab = static_cast<size_t>(model.config().vocab_size);
  for (const Example& example : split.examples) {
    const int64_t n = static_cast<int64_t>(example.tokens.size());
    KVCache cache = model.make_cache(1, n);
    std::vector<float> logits = model.backend().to_host(model.forward(example.tokens, 1, cache));
    for (int64_t t = 1; t < n; ++t) {
      if (!example.label_mask[t]) continue;
      const float* row = logits.data() + (t - 1) * vocab;
      double largest = *std::max_element(row, row + vocab), sum = 0;
      for (size_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - largest);
      total += largest + std::log(sum) - row[example.tokens[t]];
      ++tokens;
    }
  }
  return {total / static_cast<double>(tokens), tokens};
}

const std::vector<nlohmann::json> kRows = {
    {{"prompt", "What is the capital of France?"}, {"completion", "Paris, of course."}},
    {{"prompt", "Two plus two"}, {"completion", "is four"}},
    {{"prompt", "Name a colour"}, {"completion", "Blue. Or maybe green, it depends."}},
    {{"prompt", "Say hello"}, {"completion", "Hello there!"}},
    {{"prompt", "Count to three"}, {"completion", "one two three"}},
};

TEST(LoraEval, SplitLossEqualsDirectComputation) {
  testing::TinyChatModel tiny;
  testing::TempDir temp;
  testing::write_file(temp / "data.jsonl", testing::jsonl(kRows));
  DatasetOptions options = tiny.options();
  options.val_split = 0;
  Dataset dataset = tiny.load(temp / "data.jsonl", options);
  Checkpoint checkpoint = open_checkpoint(model_path("tiny-llama"));
  LoraAdapter adapter = read_peft_adapter(model_path("tiny-llama") / "lora", checkpoint.config);
  auto backend = make_cpu_backend();
  const LoraAdapter* adapters[] = {nullptr, &adapter};
  for (const LoraAdapter* lora : adapters) {
    auto model = Model::load(checkpoint, *backend, lora);
    auto [expected, tokens] = reference_loss(*model, dataset.train);
    for (int64_t batch_size : {1, 2, 8}) {
      SplitEvaluation result = evaluate_model(*model, dataset.train, batch_size);
      EXPECT_EQ(result.examples, 5);
      EXPECT_EQ(result.tokens, tokens);
      EXPECT_NEAR(result.loss, expected, 1e-5 * expected);
      EXPECT_NEAR(result.perplexity, std::exp(expected), 1e-4 * std::exp(expected));
    }
  }
}

// Packed rows are scored segment by segment: the same sum as each example alone.
TEST(LoraEval, PackedRowsScoreEachExampleAlone) {
  testing::TinyChatModel tiny;
  testing::TempDir temp;
  testing::write_file(temp / "data.jsonl", testing::jsonl(kRows));
  DatasetOptions options = tiny.options();
  options.val_split = 0;
  Dataset dataset = tiny.load(temp / "data.jsonl", options);
  auto backend = make_cpu_backend();
  auto model = Model::load(open_checkpoint(model_path("tiny-llama")), *backend);
  BatcherOptions packed;
  packed.pack = true;
  packed.batch_size = 2;
  Batcher batcher(dataset.train, packed);
  double total = 0;
  int64_t tokens = 0;
  for (const Batch& batch : batcher.epoch(0)) {
    LossSum sum = evaluate_loss(*model, batch);
    total += sum.loss;
    tokens += sum.tokens;
  }
  auto [expected, expected_tokens] = reference_loss(*model, dataset.train);
  EXPECT_EQ(tokens, expected_tokens);
  EXPECT_NEAR(total / static_cast<double>(tokens), expected, 1e-5 * expected);
}

// The fixture batch (right-padded, prompt labels -100) through evaluate_loss gives the loss
// transformers computed for the PEFT model.
class LoraEvalPeft : public ::testing::TestWithParam<testing::LoraCase> {};

TEST_P(LoraEvalPeft, MatchesPeftLoss) {
  const std::string model_name = GetParam().model;
  Checkpoint checkpoint = open_checkpoint(model_path(model_name));
  LoraAdapter adapter = read_peft_adapter(model_path(model_name) / "lora", checkpoint.config);
  auto backend = make_cpu_backend();
  auto model = Model::load(checkpoint, *backend, &adapter);
  SafetensorsFile reference =
      SafetensorsFile::open(model_path(model_name) / "lora_reference.safetensors");
  Batch batch = testing::lora_reference_batch(reference);
  batch.segments.clear();  // the attention mask is no packing: rows run by their lengths
  LossSum sum = evaluate_loss(*model, batch);
  const double loss = sum.loss / static_cast<double>(sum.tokens);
  const double expected = reference.get("loss").to_f32()[0];
  EXPECT_NEAR(loss, expected, 1e-5 * expected);
  RecordProperty("relative_error", std::to_string(std::abs(loss - expected) / expected));
}

INSTANTIATE_TEST_SUITE_P(Models, LoraEvalPeft, ::testing::ValuesIn(testing::lora_cases()),
                         [](const auto& info) {
                           std::string name = info.param.model;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(LoraEvalCli, PrintsTheSplitLoss) {
  testing::TempDir temp;
  std::filesystem::create_directories(temp / "data");
  testing::write_file(temp / "data/train.jsonl", testing::jsonl(kRows));
  testing::write_file(temp / "data/valid.jsonl", testing::jsonl({kRows[0], kRows[2]}));
  const std::string model = model_path("tiny-llama").string();
  const std::string lora = (model_path("tiny-llama") / "lora").string();
  auto result = testing::run_cli("eval --model " + model + " --adapter " + lora + " --data " +
                                 (temp / "data").string() + " --json");
  ASSERT_EQ(result.status, 0) << result.output;
  nlohmann::json out = nlohmann::json::parse(result.stdout_text);
  EXPECT_EQ(out["split"], "valid");
  EXPECT_EQ(out["examples"], 2);

  testing::TinyChatModel tiny;
  Dataset dataset = tiny.load(temp / "data");
  Checkpoint checkpoint = open_checkpoint(model);
  LoraAdapter adapter = read_peft_adapter(lora, checkpoint.config);
  auto backend = make_cpu_backend();
  auto with_adapter = Model::load(checkpoint, *backend, &adapter);
  SplitEvaluation expected = evaluate_model(*with_adapter, dataset.valid);
  EXPECT_EQ(out["tokens"], expected.tokens);
  EXPECT_NEAR(out["loss"].get<double>(), expected.loss, 1e-9);
  EXPECT_NEAR(out["perplexity"].get<double>(), std::exp(expected.loss), 1e-6);

  auto test_split = testing::run_cli("eval --model " + model + " --data " +
                                     (temp / "data").string() + " --split test");
  EXPECT_EQ(test_split.status, 1);
  EXPECT_NE(test_split.output.find("the test split is empty"), std::string::npos)
      << test_split.output;
}

}  // namespace
}  // namespace flow2
