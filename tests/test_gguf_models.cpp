// Fixture models converted to GGUF (with llama.cpp's q/k row order; GPT-2 with its Conv1D
// weights transposed and a fused attn_qkv) and loaded back: the logits still match
// transformers' reference, the vocabulary from the GGUF metadata encodes like tokenizer.json,
// and quantized exports stay within the quantization error.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "flow2/checkpoint_tokenizer.h"
#include "flow2/error.h"
#include "flow2/generate.h"
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
                         ::testing::Values("tiny-llama", "tiny-smol", "tiny-mistral-window",
                                           "tiny-gpt2"),
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
  // tiny-gpt2-variant uses erf gelu and per-layer attention scaling: llama.cpp's gpt2 has neither.
  EXPECT_THROW(
      export_gguf(open_checkpoint(testing::model_path("tiny-gpt2-variant")), dir / "a.gguf", {}),
      Error);
  EXPECT_THROW(export_gguf(open_checkpoint(testing::model_path("tiny-llama-linear-bias")),
                           dir / "b.gguf", {}),
               Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "a.gguf"));
  EXPECT_FALSE(std::filesystem::exists(dir / "b.gguf"));
}

std::vector<int32_t> to_i32(const std::vector<int64_t>& values) {
  return std::vector<int32_t>(values.begin(), values.end());
}

// GPT-2 in llama.cpp's layout: Conv1D weights stored [out, in], one fused attn_qkv.
TEST(GgufGpt2, ExportHasLlamaCppLayoutAndGeneratesLikeTransformers) {
  testing::TempDir dir;
  auto path = dir / "gpt2.gguf";
  Checkpoint original = open_checkpoint(testing::model_path("tiny-gpt2"));
  export_gguf(original, path, {DType::F32});
  auto file = GgufFile::open(path);
  EXPECT_EQ(file.find("general.architecture")->as_string("a"), "gpt2");
  EXPECT_EQ(file.find("gpt2.feed_forward_length")->as_uint("f"), 256u);
  EXPECT_EQ(file.find("gpt2.context_length")->as_uint("c"), 128u);
  std::map<std::string, Shape> shapes;
  for (const auto& tensor : file.tensors()) shapes[tensor.name] = tensor.shape;
  EXPECT_EQ(shapes.at("blk.0.attn_qkv.weight"), (Shape{192, 64}));
  EXPECT_EQ(shapes.at("blk.1.ffn_up.weight"), (Shape{256, 64}));
  EXPECT_EQ(shapes.at("blk.1.ffn_down.weight"), (Shape{64, 256}));
  EXPECT_EQ(shapes.at("position_embd.weight"), (Shape{128, 64}));
  EXPECT_FALSE(shapes.contains("output.weight"));  // tied to token_embd
  // llama.cpp's ffn_up is the transpose of Hugging Face's mlp.c_fc.
  auto up = GgufFile::open(path).tensors();
  std::vector<float> fc = original.weights.get("transformer.h.1.mlp.c_fc.weight").to_f32();
  for (const auto& tensor : up) {
    if (tensor.name != "blk.1.ffn_up.weight") continue;
    std::vector<float> values = tensor.to_f32();
    for (int64_t out = 0; out < 256; out += 37) {
      for (int64_t in = 0; in < 64; in += 5) EXPECT_EQ(values[out * 64 + in], fc[in * 256 + out]);
    }
  }

  Checkpoint converted = open_checkpoint(path);
  EXPECT_EQ(converted.config.family, ModelFamily::Gpt2);
  EXPECT_EQ(converted.config.intermediate_size, 256);
  EXPECT_TRUE(converted.config.tie_word_embeddings);
  auto backend = make_cpu_backend();
  auto model = Model::load(converted, *backend);
  auto reference =
      SafetensorsFile::open(testing::model_path("tiny-gpt2") / "reference.safetensors");
  auto prompt = to_i32(reference.get("gen_prompt").to_i64());
  auto expected = to_i32(reference.get("gen_output").to_i64());
  GenerationOptions options;
  options.max_new_tokens = static_cast<int64_t>(expected.size() - prompt.size());
  GenerationResult result = generate(*model, prompt, options);
  EXPECT_EQ(result.ids, std::vector<int32_t>(expected.begin() + prompt.size(), expected.end()));
}

// Logits of the GGUF model against those of the safetensors model it came from.
double max_difference_to_source(const Checkpoint& source, const std::filesystem::path& gguf) {
  auto backend = make_cpu_backend();
  auto expected_model = Model::load(source, *backend);
  auto actual_model = Model::load(open_checkpoint(gguf), *backend);
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 40; ++i) ids.push_back((i * 37 + 11) % 320);
  KVCache expected_cache = expected_model->make_cache(2, 20);
  KVCache actual_cache = actual_model->make_cache(2, 20);
  return testing::max_abs_difference(
      backend->to_host(actual_model->forward(ids, 2, actual_cache)),
      backend->to_host(expected_model->forward(ids, 2, expected_cache)));
}

TEST(GgufGpt2, QuantizedExportsStayCloseAndGenerateTheSameTokens) {
  testing::TempDir dir;
  Checkpoint checkpoint = open_checkpoint(testing::model_path("tiny-gpt2"));
  auto reference =
      SafetensorsFile::open(testing::model_path("tiny-gpt2") / "reference.safetensors");
  auto prompt = to_i32(reference.get("gen_prompt").to_i64());
  auto expected = to_i32(reference.get("gen_output").to_i64());
  // tiny-gpt2's logits have a standard deviation near 9 (up to 59): F16 moves the largest of
  // its 15,360 logits by ~0.02, Q8_0 by ~0.4, Q4_0 by ~7; more bits, smaller errors.
  const std::pair<DType, double> cases[] = {
      {DType::F32, 1e-4}, {DType::F16, 0.05}, {DType::Q8_0, 1.0}, {DType::Q4_0, 12.0}};
  double previous = -1.0;
  for (const auto& [dtype, bound] : cases) {
    auto path = dir / (std::string(dtype_name(dtype)) + ".gguf");
    export_gguf(checkpoint, path, {dtype});
    size_t stored = 0;
    const GgufFile file = GgufFile::open(path);
    for (const auto& tensor : file.tensors()) stored += tensor.dtype == dtype;
    // The embeddings and 4 matrices a layer; quantizing leaves position_embd F32, as llama.cpp's
    // quantizer does (norms and biases are F32 anyway).
    if (dtype != DType::F32) {
      EXPECT_EQ(stored, (is_quantized(dtype) ? 1u : 2u) + 2u * 4u) << dtype_name(dtype);
    }
    double error = max_logit_error(path, "tiny-gpt2");
    EXPECT_LE(error, bound) << dtype_name(dtype);
    EXPECT_GT(error, previous) << dtype_name(dtype);
    previous = error;
    EXPECT_LE(max_difference_to_source(checkpoint, path), bound) << dtype_name(dtype);
    if (dtype != DType::Q4_0) {
      auto backend = make_cpu_backend();
      auto model = Model::load(open_checkpoint(path), *backend);
      GenerationOptions options;
      options.max_new_tokens = static_cast<int64_t>(expected.size() - prompt.size());
      EXPECT_EQ(generate(*model, prompt, options).ids,
                std::vector<int32_t>(expected.begin() + prompt.size(), expected.end()))
          << dtype_name(dtype);
    }
  }
}

// tiny-gpt2-variant's n_inner (80) and untied lm_head have GGUF forms; its erf gelu and
// per-layer attention scaling do not. With those two set to what llama.cpp's gpt2 computes, the
// GGUF model must match the safetensors model exactly.
TEST(GgufGpt2, InnerSizeAndUntiedHeadRoundTrip) {
  testing::TempDir dir;
  Checkpoint checkpoint = open_checkpoint(testing::model_path("tiny-gpt2-variant"));
  checkpoint.config.activation = Activation::GeluTanh;
  checkpoint.config.scale_attn_by_inverse_layer_idx = false;
  auto path = dir / "variant.gguf";
  export_gguf(checkpoint, path, {DType::F32});
  Checkpoint converted = open_checkpoint(path);
  EXPECT_EQ(converted.config.intermediate_size, 80);
  EXPECT_FALSE(converted.config.tie_word_embeddings);
  EXPECT_EQ(converted.config.num_layers, 3);
  EXPECT_LE(max_difference_to_source(checkpoint, path), 1e-5);
}

TEST(GgufGpt2, MissingAndUnexpectedTensorsAreErrors) {
  testing::TempDir dir;
  export_gguf(open_checkpoint(testing::model_path("tiny-gpt2")), dir / "good.gguf", {DType::F32});
  auto file = GgufFile::open(dir / "good.gguf");
  auto rewrite = [&](const std::string& drop, const std::string& rename) {
    std::vector<HostTensor> tensors;
    for (HostTensor tensor : file.tensors()) {
      if (tensor.name == drop) continue;
      if (tensor.name == rename) tensor.name = "blk.0.attn_q.weight";
      tensors.push_back(tensor);
    }
    write_gguf(dir / "bad.gguf", file.metadata(), tensors);
  };
  auto error = [&]() -> std::string {
    try {
      auto backend = make_cpu_backend();
      Model::load(open_checkpoint(dir / "bad.gguf"), *backend);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  rewrite("blk.1.ffn_down.bias", "");
  EXPECT_NE(error().find("blk.1.ffn_down.bias"), std::string::npos) << error();
  rewrite("", "blk.0.attn_qkv.weight");
  EXPECT_NE(error().find("unexpected tensor 'blk.0.attn_q.weight'"), std::string::npos) << error();
  GgufMetadata metadata;
  for (const auto& entry : file.metadata()) {
    if (entry.first != "gpt2.context_length") metadata.push_back(entry);
  }
  write_gguf(dir / "bad.gguf", metadata, file.tensors());
  EXPECT_NE(error().find("gpt2.context_length"), std::string::npos) << error();
}

}  // namespace
}  // namespace flow2
