// Fixture models converted to GGUF (with llama.cpp's q/k row order) and loaded back: the
// logits still match transformers' reference, the vocabulary from the GGUF metadata encodes
// like tokenizer.json, and quantized exports stay within the quantization error.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "flow2/checkpoint_tokenizer.h"
#include "flow2/error.h"
#include "flow2/gguf.h"
#include "flow2/gguf_export.h"
#include "flow2/model.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2 {
namespace {

double max_logit_error(const std::filesystem::path& gguf, const std::string& fixture) {
  auto backend = make_cpu_backend();
  auto model = Model::load(open_checkpoint(gguf), *backend);
  auto reference = SafetensorsFile::open(testing::model_path(fixture) / "reference.safetensors");
  auto ids64 = reference.get("input_ids").to_i64();
  std::vector<int32_t> ids(ids64.begin(), ids64.end());
  KVCache cache = model->make_cache(2, 24);
  return testing::max_abs_difference(backend->to_host(model->forward(ids, 2, cache)),
                                     reference.get("logits").to_f32());
}

class GgufRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufRoundTrip, F32ExportReproducesTheReferenceLogits) {
  testing::TempDir dir;
  auto path = dir / "model.gguf";
  export_gguf(open_checkpoint(testing::model_path(GetParam())), path, {DType::F32});
  EXPECT_LE(max_logit_error(path, GetParam()), 1e-4);
}

TEST_P(GgufRoundTrip, VocabularyFromMetadataEncodesLikeTokenizerJson) {
  testing::TempDir dir;
  auto path = dir / "model.gguf";
  Checkpoint original = open_checkpoint(testing::model_path(GetParam()));
  export_gguf(original, path, {DType::F16});
  Checkpoint converted = open_checkpoint(path);
  Tokenizer expected = *checkpoint_tokenizer(original);
  Tokenizer actual = *checkpoint_tokenizer(converted);
  std::ifstream corpus(testing::data_path("tokenizers/corpus.jsonl"));
  for (std::string line; std::getline(corpus, line);) {
    std::string text = nlohmann::json::parse(line).get<std::string>();
    EXPECT_EQ(actual.encode(text), expected.encode(text)) << line;
  }
  EXPECT_EQ(checkpoint_tokenizer_config(converted).chat_template,
            checkpoint_tokenizer_config(original).chat_template);
  EXPECT_EQ(converted.config.eos_token_ids.at(0), original.config.eos_token_ids.at(0));
  EXPECT_EQ(converted.config.tie_word_embeddings, original.config.tie_word_embeddings);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufRoundTrip,
                         ::testing::Values("tiny-llama", "tiny-smol", "tiny-mistral-window"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(GgufExport, QuantizedWeightsStayCloseToTheReference) {
  testing::TempDir dir;
  Checkpoint checkpoint = open_checkpoint(testing::model_path("tiny-llama"));
  // tiny-llama's logits have a standard deviation near 1 and its weights are Gaussian, the hard
  // case for block quantization: the largest of its 15,360 logits moves by < 0.15 with 8-bit
  // weights and < 2 with 4-bit ones, and more bits always mean a smaller error.
  const std::pair<DType, double> cases[] = {
      {DType::F16, 5e-3}, {DType::Q8_0, 0.15}, {DType::Q4_1, 2.0}, {DType::Q4_0, 2.0}};
  double previous = 0.0;
  for (const auto& [dtype, bound] : cases) {
    auto path = dir / (std::string(dtype_name(dtype)) + ".gguf");
    export_gguf(checkpoint, path, {dtype});
    auto file = GgufFile::open(path);
    bool found = false;
    for (const auto& tensor : file.tensors()) found |= tensor.dtype == dtype;
    EXPECT_TRUE(found) << dtype_name(dtype);
    double error = max_logit_error(path, "tiny-llama");
    EXPECT_LE(error, bound) << dtype_name(dtype);
    if (dtype != DType::Q4_0) {
      EXPECT_GT(error, previous) << dtype_name(dtype);
    }
    previous = error;
  }
}

TEST(GgufExport, UnsupportedModelsAreErrors) {
  testing::TempDir dir;
  EXPECT_THROW(export_gguf(open_checkpoint(testing::model_path("tiny-gpt2")), dir / "a.gguf", {}),
               Error);
  EXPECT_THROW(export_gguf(open_checkpoint(testing::model_path("tiny-llama-linear-bias")),
                           dir / "b.gguf", {}),
               Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "a.gguf"));
  EXPECT_FALSE(std::filesystem::exists(dir / "b.gguf"));
}

}  // namespace
}  // namespace flow2
