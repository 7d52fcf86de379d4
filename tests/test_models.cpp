// Forward passes of the six fixture models against the logits and greedy generations that
// transformers produced (tests/data/models/*/reference.safetensors).
#include <gtest/gtest.h>

#include "backend_list.h"
#include "flow2/error.h"
#include "flow2/generate.h"
#include "flow2/model.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2 {
namespace {

struct ModelCase {
  std::string name;
  double tolerance;     // max |logit error| the fixtures README allows
  bool has_generation;  // reference.safetensors holds gen_prompt / gen_output
  // Dynamic NTK RoPE changes its frequencies as the sequence grows past the trained context,
  // so (in transformers too) cached keys differ from a full pass over the whole sequence.
  bool cache_matches_full_pass = true;
  // bf16/f16 weights: CUDA runs prompts on 16-bit tensor cores (see kTensorCoreTolerance).
  bool sixteen_bit = false;
};

// Logits of 16-bit fixtures on CUDA, where prompt products round x to bf16/f16 (relative 2^-9
// per element) and the rounding compounds over the layers: about 1% of the largest logit (4.5).
constexpr double kTensorCoreTolerance = 5e-2;

// Names the case in test output instead of printing its bytes.
void PrintTo(const ModelCase& model_case, std::ostream* out) {
  *out << model_case.name;
}

std::vector<ModelCase> model_cases() {
  return {// tests/data/models/FIXTURES_README.md
          {"tiny-llama", 1e-4, true},
          {"tiny-smol", 1e-3, true},
          {"tiny-qwen2", 1e-4, true},
          {"tiny-gpt2", 1e-3, true},
          {"tiny-llama-bf16", 1e-4, false, true, true},
          {"tiny-llama-sharded", 1e-4, true},
          // tests/generators/gen_variant_fixtures.py
          {"tiny-llama-linear-bias", 1e-4, true},
          {"tiny-llama-dynamic", 1e-4, true, false},
          {"tiny-mistral-window", 1e-4, true},
          {"tiny-qwen2-window", 1e-4, true},
          {"tiny-gpt2-variant", 1e-4, true},
          {"tiny-llama-f16", 1e-4, true, true, true}};
}

std::vector<int32_t> to_i32(const std::vector<int64_t>& values) {
  return std::vector<int32_t>(values.begin(), values.end());
}

class FixtureModel : public ::testing::TestWithParam<std::tuple<ModelCase, std::string>> {
 protected:
  void SetUp() override {
    const auto& [model_case, backend_name] = GetParam();
    if (auto reason = testing::skip_reason(backend_name); !reason.empty()) GTEST_SKIP() << reason;
    backend_ = make_backend(backend_name);
    auto directory = testing::model_path(model_case.name);
    model_ = Model::load(open_checkpoint(directory), *backend_);
    reference_ = std::make_unique<SafetensorsFile>(
        SafetensorsFile::open(directory / "reference.safetensors"));
    tolerance_ = model_case.tolerance;
    if (backend_name == "cuda" && model_case.sixteen_bit) {
      tolerance_ = kTensorCoreTolerance;
      consistency_tolerance_ = kTensorCoreTolerance;
    }
  }
  std::vector<float> logits_of(std::span<const int32_t> ids, int64_t batch) {
    KVCache cache = model_->make_cache(batch, static_cast<int64_t>(ids.size()) / batch);
    return backend_->to_host(model_->forward(ids, batch, cache));
  }
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<SafetensorsFile> reference_;
  double tolerance_ = 0;
  // Between two ways of computing the same logits on one backend (whole prompt vs pieces).
  double consistency_tolerance_ = 1e-4;
};

TEST_P(FixtureModel, LogitsMatchTransformers) {
  auto ids = to_i32(reference_->get("input_ids").to_i64());
  auto expected = reference_->get("logits").to_f32();
  const int64_t rows = 2, length = 24, vocab = model_->config().vocab_size;
  ASSERT_EQ(expected.size(), static_cast<size_t>(rows * length * vocab));
  for (int64_t row = 0; row < rows; ++row) {
    auto row_ids = std::span<const int32_t>(ids).subspan(row * length, length);
    auto logits = logits_of(row_ids, 1);
    auto expected_row =
        std::span<const float>(expected).subspan(row * length * vocab, length * vocab);
    const double error = testing::max_abs_difference(logits, expected_row);
    EXPECT_LE(error, tolerance_) << "row " << row;
    RecordProperty("max_logit_error_row" + std::to_string(row), std::to_string(error));
  }
  // Both rows as one batch give the same logits.
  EXPECT_LE(testing::max_abs_difference(logits_of(ids, 2), expected), tolerance_);
}

// Only fixtures whose cached decoding equals a full pass (see ModelCase).
class CachingModel : public FixtureModel {};

TEST_P(CachingModel, IncrementalDecodingEqualsFullForward) {
  auto ids = to_i32(reference_->get("input_ids").to_i64());
  const int64_t length = 24, vocab = model_->config().vocab_size;
  auto first_row = std::span<const int32_t>(ids).subspan(0, length);
  auto full = logits_of(first_row, 1);
  // Chunks of 5, 1, 7, then single tokens: every split point must give the same logits.
  KVCache cache = model_->make_cache(1, length);
  std::vector<float> pieced;
  const int64_t chunks[] = {5, 1, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  int64_t position = 0;
  for (int64_t chunk : chunks) {
    auto logits = backend_->to_host(model_->forward(first_row.subspan(position, chunk), 1, cache));
    pieced.insert(pieced.end(), logits.begin(), logits.end());
    position += chunk;
  }
  ASSERT_EQ(position, length);
  ASSERT_EQ(pieced.size(), static_cast<size_t>(length * vocab));
  EXPECT_LE(testing::max_abs_difference(pieced, full), consistency_tolerance_);
}

// Only fixtures with a generation reference take part (see the instantiation below).
class GeneratingModel : public FixtureModel {};

TEST_P(GeneratingModel, GreedyGenerationMatchesTransformers) {
  auto prompt = to_i32(reference_->get("gen_prompt").to_i64());
  auto expected = to_i32(reference_->get("gen_output").to_i64());
  GenerationOptions options;
  options.max_new_tokens = static_cast<int64_t>(expected.size() - prompt.size());
  GenerationResult result = generate(*model_, prompt, options);
  std::vector<int32_t> expected_new(expected.begin() + prompt.size(), expected.end());
  EXPECT_EQ(result.ids, expected_new);
  EXPECT_EQ(result.stop_reason, "length");
}

TEST_P(FixtureModel, PerplexityAgreesWithReferenceLogits) {
  auto ids = to_i32(reference_->get("input_ids").to_i64());
  auto expected = reference_->get("logits").to_f32();
  const int64_t length = 24, vocab = model_->config().vocab_size;
  auto first_row = std::span<const int32_t>(ids).subspan(0, length);
  double nll = 0;
  for (int64_t t = 0; t + 1 < length; ++t) {
    nll -= log_probability(std::span<const float>(expected).subspan(t * vocab, vocab), ids[t + 1]);
  }
  nll /= length - 1;
  PerplexityResult result = perplexity(*model_, first_row);
  EXPECT_EQ(result.tokens, length);
  EXPECT_NEAR(result.nll, nll, 10 * tolerance_);
  EXPECT_NEAR(result.perplexity, std::exp(nll), std::exp(nll) * 10 * tolerance_);
}

TEST_P(FixtureModel, BadTokenIdsAreErrors) {
  KVCache cache = model_->make_cache(1, 4);
  std::vector<int32_t> ids = {1, static_cast<int32_t>(model_->config().vocab_size)};
  EXPECT_THROW(model_->forward(ids, 1, cache), Error);
  std::vector<int32_t> too_many = {1, 2, 3, 4, 5};
  EXPECT_THROW(model_->forward(too_many, 1, cache), Error);
}

std::string case_name(const ::testing::TestParamInfo<FixtureModel::ParamType>& info) {
  std::string name = std::get<0>(info.param).name + "_" + std::get<1>(info.param);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

std::vector<ModelCase> cases_where(bool ModelCase::*property) {
  std::vector<ModelCase> cases;
  for (const auto& model_case : model_cases()) {
    if (model_case.*property) cases.push_back(model_case);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureModel,
                         ::testing::Combine(::testing::ValuesIn(model_cases()),
                                            ::testing::ValuesIn(testing::inference_backends())),
                         case_name);
INSTANTIATE_TEST_SUITE_P(
    Fixtures, GeneratingModel,
    ::testing::Combine(::testing::ValuesIn(cases_where(&ModelCase::has_generation)),
                       ::testing::ValuesIn(testing::inference_backends())),
    case_name);
INSTANTIATE_TEST_SUITE_P(
    Fixtures, CachingModel,
    ::testing::Combine(::testing::ValuesIn(cases_where(&ModelCase::cache_matches_full_pass)),
                       ::testing::ValuesIn(testing::inference_backends())),
    case_name);

}  // namespace
}  // namespace flow2

namespace flow2 {
namespace {

// Windowed perplexity: a window as long as the input is the plain computation, and windows of
// two tokens score each token from its predecessor alone.
TEST(WindowedPerplexity, MatchesDirectComputations) {
  auto backend = make_cpu_backend();
  auto model = Model::load(open_checkpoint(testing::model_path("tiny-llama")), *backend);
  auto reference =
      SafetensorsFile::open(testing::model_path("tiny-llama") / "reference.safetensors");
  auto ids64 = reference.get("input_ids").to_i64();
  std::vector<int32_t> ids(ids64.begin(), ids64.begin() + 24);
  PerplexityResult whole = perplexity(*model, ids);
  EXPECT_DOUBLE_EQ(perplexity(*model, ids, 24).nll, whole.nll);
  EXPECT_DOUBLE_EQ(perplexity(*model, ids, 100).nll, whole.nll);

  double total = 0;
  for (size_t t = 1; t < ids.size(); ++t) {
    KVCache cache = model->make_cache(1, 1);
    std::vector<float> logits =
        backend->to_host(model->forward(std::span<const int32_t>(&ids[t - 1], 1), 1, cache));
    total -= log_probability(logits, ids[t]);
  }
  EXPECT_NEAR(perplexity(*model, ids, 2).nll, total / 23, 1e-6);
  double windowed = perplexity(*model, ids, 10).nll;
  EXPECT_NE(windowed, whole.nll);  // less context changes the figure
  EXPECT_GT(windowed, 0.0);
}

}  // namespace
}  // namespace flow2
