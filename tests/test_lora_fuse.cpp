// flow2 fuse: the merged checkpoint reproduces PEFT's logits with the adapter, keeps the Hugging
// Face names and layouts (GPT-2's Conv1D and fused c_attn), and holds exactly W + scaling * B A.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "flow2/error.h"
#include "flow2/gguf_export.h"
#include "flow2/lora_fuse.h"
#include "flow2/lora_peft.h"
#include "lora_fixture_support.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::model_path;

double fused_logit_error(const std::filesystem::path& directory, const std::string& model) {
  auto backend = make_cpu_backend();
  auto fused = Model::load(open_checkpoint(directory), *backend);
  SafetensorsFile reference =
      SafetensorsFile::open(model_path(model) / "lora_reference.safetensors");
  return testing::max_reference_logit_error(*fused, reference);
}

class LoraFuse : public ::testing::TestWithParam<testing::LoraCase> {};

TEST_P(LoraFuse, FusedModelMatchesPeftLogits) {
  const std::string model = GetParam().model;
  Checkpoint base = open_checkpoint(model_path(model));
  LoraAdapter adapter = read_peft_adapter(model_path(model) / "lora", base.config);
  testing::TempDir temp;
  std::vector<std::string> files =
      fuse_lora(base, adapter, model_path(model) / "lora", temp / "fused", {});
  EXPECT_LE(fused_logit_error(temp / "fused", model), 1e-3);
  for (const char* name :
       {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(std::filesystem::exists(temp / "fused" / name)) << name;
  }
  // Only the output directory is left: the temporary one was renamed.
  size_t entries = 0;
  for (auto& entry : std::filesystem::directory_iterator(temp.path())) entries += entry.exists();
  EXPECT_EQ(entries, 1u);
}

// Every tensor read back is the base tensor, or for an adapted weight W + scaling * B A
// computed here in double precision (transposed for GPT-2's Conv1D), with the same name and
// shape as in the base checkpoint.
TEST_P(LoraFuse, TensorsAreTheMergedWeights) {
  const std::string model = GetParam().model;
  Checkpoint base = open_checkpoint(model_path(model));
  LoraAdapter adapter = read_peft_adapter(model_path(model) / "lora", base.config);
  testing::TempDir temp;
  fuse_lora(base, adapter, model_path(model) / "lora", temp / "fused", {DType::F32});
  SafetensorsFile fused = SafetensorsFile::open(temp / "fused/model.safetensors");
  ASSERT_EQ(fused.tensors().size(), base.weights.tensors().size());
  const bool conv1d = base.config.family == ModelFamily::Gpt2;
  size_t merged = 0;
  for (const auto& [name, tensor] : base.weights.tensors()) {
    const HostTensor& got = fused.get(name);
    ASSERT_EQ(got.shape, tensor.shape) << name;
    ASSERT_EQ(got.dtype, DType::F32);
    std::vector<float> expected = tensor.to_f32();
    const LoraModule* module = nullptr;
    for (const LoraModule& m : adapter.modules) {
      if (m.name == "base_model.model." + name.substr(0, name.size() - 7)) module = &m;
    }
    if (module == nullptr) {
      EXPECT_EQ(got.to_f32(), expected) << name;
      continue;
    }
    ++merged;
    const int64_t rank = adapter.config.rank, in = module->in, out = module->out;
    std::vector<float> values = got.to_f32();
    double worst = 0;
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) {
        double delta = 0;
        for (int64_t r = 0; r < rank; ++r) {
          delta += static_cast<double>(module->b[o * rank + r]) * module->a[r * in + i];
        }
        const size_t index = static_cast<size_t>(conv1d ? i * out + o : o * in + i);
        worst = std::max(worst, std::abs(values[index] - (expected[index] + 2.0 * delta)));
      }
    }
    EXPECT_LE(worst, 1e-6) << name;
  }
  EXPECT_EQ(merged, adapter.modules.size());
  // And the file holds exactly what fused_weights computes.
  for (const HostTensor& tensor : fused_weights(base, adapter, DType::F32)) {
    const HostTensor& got = fused.get(tensor.name);
    EXPECT_TRUE(
        std::equal(got.bytes.begin(), got.bytes.end(), tensor.bytes.begin(), tensor.bytes.end()))
        << tensor.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, LoraFuse, ::testing::ValuesIn(testing::lora_cases()),
                         [](const auto& info) {
                           std::string name = info.param.model;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(LoraFuseOptions, GptTwoKeepsConv1dLayoutAndDtypeIsHonoured) {
  Checkpoint base = open_checkpoint(model_path("tiny-gpt2"));
  LoraAdapter adapter = read_peft_adapter(model_path("tiny-gpt2") / "lora", base.config);
  testing::TempDir temp;
  fuse_lora(base, adapter, model_path("tiny-gpt2") / "lora", temp / "fused", {DType::BF16});
  SafetensorsFile fused = SafetensorsFile::open(temp / "fused/model.safetensors");
  const HostTensor& c_attn = fused.get("transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(c_attn.shape, (Shape{64, 192}));
  EXPECT_EQ(c_attn.dtype, DType::BF16);
  nlohmann::json config = nlohmann::json::parse(testing::read_file(temp / "fused/config.json"));
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["model_type"], "gpt2");
  // bf16 rounding of every weight: 0.5% of the largest logit (56).
  EXPECT_LE(fused_logit_error(temp / "fused", "tiny-gpt2"), 0.3);
  // The output must be new.
  EXPECT_THROW(
      fuse_lora(base, adapter, model_path("tiny-gpt2") / "lora", temp / "fused", {DType::F32}),
      Error);
}

// A GGUF base becomes a Hugging Face llama directory (config.json generated from the GGUF
// metadata, q/k rows already in Hugging Face order after loading).
TEST(LoraFuseOptions, FromGguf) {
  testing::TempDir temp;
  export_gguf(open_checkpoint(model_path("tiny-smol")), temp / "smol.gguf",
              GgufExportOptions{DType::F32});
  Checkpoint base = open_checkpoint(temp / "smol.gguf");
  LoraAdapter adapter = read_peft_adapter(model_path("tiny-smol") / "lora", base.config);
  fuse_lora(base, adapter, model_path("tiny-smol") / "lora", temp / "fused", {});
  EXPECT_LE(fused_logit_error(temp / "fused", "tiny-smol"), 1e-3);
  nlohmann::json config = nlohmann::json::parse(testing::read_file(temp / "fused/config.json"));
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(config["tie_word_embeddings"], true);
  EXPECT_EQ(config["torch_dtype"], "float32");
  SafetensorsFile fused = SafetensorsFile::open(temp / "fused/model.safetensors");
  EXPECT_NE(fused.find("model.layers.1.self_attn.q_proj.weight"), nullptr);
}

TEST(LoraFuseCli, FuseThenGenerateMatchesGenerateWithAdapter) {
  testing::TempDir temp;
  const std::string model = model_path("tiny-llama").string();
  const std::string lora = (model_path("tiny-llama") / "lora").string();
  auto fuse = testing::run_cli("fuse --model " + model + " --adapter " + lora + " --out " +
                               (temp / "fused").string());
  ASSERT_EQ(fuse.status, 0) << fuse.output;
  EXPECT_NE(fuse.output.find("fused 21 LoRA modules"), std::string::npos) << fuse.output;
  const std::string prompt = " --prompt-ids 1,40,41,42,43 -n 12 --ignore-eos --json";
  auto with_adapter = testing::run_cli("generate --model " + model + " --adapter " + lora + prompt);
  auto fused = testing::run_cli("generate --model " + (temp / "fused").string() + prompt);
  auto plain = testing::run_cli("generate --model " + model + prompt);
  ASSERT_EQ(with_adapter.status, 0) << with_adapter.output;
  ASSERT_EQ(fused.status, 0) << fused.output;
  auto ids = [](const testing::CliResult& r) {
    return nlohmann::json::parse(r.stdout_text)["ids"];
  };
  EXPECT_EQ(ids(with_adapter), ids(fused));
  EXPECT_NE(ids(with_adapter), ids(plain));
  auto bad = testing::run_cli("generate --model " + model + " --adapter " +
                              (model_path("tiny-gpt2") / "lora").string() + prompt);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("flow2: error:"), std::string::npos);
}

}  // namespace
}  // namespace flow2
