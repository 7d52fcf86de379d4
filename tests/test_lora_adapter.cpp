// LoRA adapters: module planning as PEFT matches target_modules, PEFT's initialization, and
// adapter directories read and written exactly as PEFT 0.21 saves them (tests/data/models/*/lora).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "flow2/error.h"
#include "flow2/lora_peft.h"
#include "flow2/safetensors.h"
#include "lora_fixture_support.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::model_path;

ModelConfig config_of(const std::string& model) {
  return load_model_config(model_path(model));
}

std::set<std::string> fixture_modules(const std::string& model) {
  SafetensorsFile file =
      SafetensorsFile::open(model_path(model) / "lora/adapter_model.safetensors");
  std::set<std::string> names;
  for (const HostTensor& tensor : file.tensors()) {
    names.insert(tensor.name.substr(0, tensor.name.find(".lora_")));
  }
  return names;
}

class LoraFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraFixture, PlanMatchesThePeftModules) {
  const std::string model = GetParam();
  LoraAdapter adapter = read_peft_adapter(model_path(model) / "lora");
  std::vector<LoraModule> plan = plan_lora_modules(adapter.config, config_of(model));
  std::set<std::string> planned;
  for (const LoraModule& module : plan) planned.insert(module.name);
  EXPECT_EQ(planned, fixture_modules(model));
  EXPECT_EQ(planned.size(), plan.size());
}

TEST_P(LoraFixture, ReadsTheAdapter) {
  const std::string model = GetParam();
  const ModelConfig config = config_of(model);
  LoraAdapter adapter = read_peft_adapter(model_path(model) / "lora", config);
  EXPECT_EQ(adapter.config.rank, 4);
  EXPECT_EQ(adapter.config.alpha, 8.0f);
  EXPECT_EQ(adapter.config.scaling(), 2.0f);
  EXPECT_FALSE(adapter.config.rslora);
  EXPECT_EQ(adapter.base_model, model);
  SafetensorsFile file =
      SafetensorsFile::open(model_path(model) / "lora/adapter_model.safetensors");
  ASSERT_EQ(adapter.modules.size() * 2, file.tensors().size());
  std::vector<LoraModule> plan = plan_lora_modules(adapter.config, config);
  for (size_t i = 0; i < plan.size(); ++i) {
    const LoraModule& module = adapter.modules[i];
    EXPECT_EQ(module.name, plan[i].name);  // the model's module order
    EXPECT_EQ(module.layer, plan[i].layer);
    EXPECT_EQ(module.target, plan[i].target);
    EXPECT_EQ(module.in, plan[i].in);
    EXPECT_EQ(module.out, plan[i].out);
    EXPECT_EQ(module.a, file.get(module.name + ".lora_A.weight").to_f32());
    EXPECT_EQ(module.b, file.get(module.name + ".lora_B.weight").to_f32());
  }
}

// Written back, the adapter is the fixture: the same config text, key set, shapes, dtype,
// metadata and bits.
TEST_P(LoraFixture, WritesWhatPeftWrote) {
  const std::string model = GetParam();
  const ModelConfig config = config_of(model);
  LoraAdapter adapter = read_peft_adapter(model_path(model) / "lora", config);
  testing::TempDir temp;
  write_peft_adapter(adapter, config, temp / "out");
  EXPECT_EQ(testing::read_file(temp / "out/adapter_config.json"),
            testing::read_file(model_path(model) / "lora/adapter_config.json"));
  SafetensorsFile expected =
      SafetensorsFile::open(model_path(model) / "lora/adapter_model.safetensors");
  SafetensorsFile written = SafetensorsFile::open(temp / "out/adapter_model.safetensors");
  EXPECT_EQ(written.metadata(), expected.metadata());
  ASSERT_EQ(written.tensors().size(), expected.tensors().size());
  for (size_t i = 0; i < expected.tensors().size(); ++i) {
    const HostTensor& want = expected.tensors()[i];
    const HostTensor& got = written.tensors()[i];
    EXPECT_EQ(got.name, want.name);  // also the order of the data
    EXPECT_EQ(got.dtype, DType::F32);
    EXPECT_EQ(got.shape, want.shape);
    EXPECT_TRUE(
        std::equal(got.bytes.begin(), got.bytes.end(), want.bytes.begin(), want.bytes.end()))
        << got.name;
  }
  // Nothing else is left in the directory (no temporaries).
  size_t files = 0;
  for (auto& entry : std::filesystem::directory_iterator(temp / "out")) files += entry.exists();
  EXPECT_EQ(files, 2u);
}

INSTANTIATE_TEST_SUITE_P(Models, LoraFixture,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-smol", "tiny-gpt2"));

TEST(LoraPlan, GptTwoAllLinearAdaptsBothCProjAndFusedAttention) {
  LoraConfig lora;
  lora.targets = {"all-linear"};
  std::vector<LoraModule> plan = plan_lora_modules(lora, config_of("tiny-gpt2"));
  ASSERT_EQ(plan.size(), 8u);
  EXPECT_EQ(plan[0].name, "base_model.model.transformer.h.0.attn.c_attn");
  EXPECT_EQ(plan[0].out, 192);
  EXPECT_EQ(plan[1].name, "base_model.model.transformer.h.0.attn.c_proj");
  EXPECT_EQ(plan[2].name, "base_model.model.transformer.h.0.mlp.c_fc");
  EXPECT_EQ(plan[3].name, "base_model.model.transformer.h.0.mlp.c_proj");
  EXPECT_EQ(plan[3].in, 256);
  lora.targets = {"c_proj"};
  EXPECT_EQ(plan_lora_modules(lora, config_of("tiny-gpt2")).size(), 4u);
  lora.targets = {"attn.c_proj"};
  EXPECT_EQ(plan_lora_modules(lora, config_of("tiny-gpt2")).size(), 2u);
}

TEST(LoraPlan, LlamaTargetsLayersAndRegex) {
  const ModelConfig config = config_of("tiny-llama");  // 3 layers, 4 heads, 2 kv heads
  LoraConfig lora;
  lora.targets = {"q_proj", "v_proj"};
  lora.num_layers = 2;
  std::vector<LoraModule> plan = plan_lora_modules(lora, config);
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[0].name, "base_model.model.model.layers.1.self_attn.q_proj");
  EXPECT_EQ(plan[1].name, "base_model.model.model.layers.1.self_attn.v_proj");
  EXPECT_EQ(plan[1].out, 32);
  EXPECT_EQ(plan[3].layer, 2);
  lora.num_layers = -1;
  lora.targets = {R"(.*\.layers\.0\.mlp\.(up|down)_proj)"};
  plan = plan_lora_modules(lora, config);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].target, "mlp.up_proj");
  EXPECT_EQ(plan[1].in, 160);
  lora.targets = {"all-linear"};
  EXPECT_EQ(plan_lora_modules(lora, config).size(), 21u);
}

TEST(LoraPlan, RejectsWhatPeftWouldReject) {
  const ModelConfig config = config_of("tiny-llama");
  LoraConfig lora;
  lora.targets = {"q_proj", "c_attn"};
  EXPECT_THROW(plan_lora_modules(lora, config), Error);
  lora.targets = {"lm_head"};
  EXPECT_THROW(plan_lora_modules(lora, config), Error);
  lora.targets = {"q_proj"};
  lora.num_layers = 4;
  EXPECT_THROW(plan_lora_modules(lora, config), Error);
  lora.num_layers = -1;
  lora.rank = 0;
  EXPECT_THROW(plan_lora_modules(lora, config), Error);
}

TEST(LoraConfig, ScalingAndLookup) {
  LoraConfig lora;
  lora.rank = 16;
  lora.alpha = 32;
  EXPECT_EQ(lora.scaling(), 2.0f);
  lora.rslora = true;
  EXPECT_EQ(lora.scaling(), 8.0f);
  LoraAdapter adapter;
  adapter.config.targets = {"c_attn", "c_proj"};
  adapter.modules = plan_lora_modules(adapter.config, config_of("tiny-gpt2"));
  EXPECT_EQ(adapter.find(1, "c_attn")->name, "base_model.model.transformer.h.1.attn.c_attn");
  EXPECT_EQ(adapter.find(0, "mlp.c_proj")->target, "mlp.c_proj");
  EXPECT_EQ(adapter.find(0, "c_fc"), nullptr);
  EXPECT_THROW(adapter.find(0, "c_proj"), Error);
}

TEST(LoraInit, AsPeftInitializes) {
  const ModelConfig config = config_of("tiny-llama");
  LoraConfig lora;
  lora.targets = {"all-linear"};
  LoraAdapter adapter = init_lora_adapter(lora, config, 7);
  ASSERT_EQ(adapter.modules.size(), 21u);
  for (const LoraModule& module : adapter.modules) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(module.in));
    ASSERT_EQ(module.a.size(), static_cast<size_t>(8 * module.in));
    float largest = 0;
    for (float value : module.a) largest = std::max(largest, std::abs(value));
    EXPECT_LE(largest, bound);
    EXPECT_GT(largest, 0.8f * bound);
    EXPECT_EQ(module.b, std::vector<float>(static_cast<size_t>(module.out * 8), 0.0f));
  }
  EXPECT_EQ(init_lora_adapter(lora, config, 7).modules[3].a, adapter.modules[3].a);
  EXPECT_NE(init_lora_adapter(lora, config, 8).modules[3].a, adapter.modules[3].a);
}

// Whatever flow2 writes it reads back bit for bit, settings included.
TEST(LoraRoundTrip, WriteThenReadIsExact) {
  const ModelConfig config = config_of("tiny-gpt2");
  LoraConfig lora;
  lora.rank = 3;
  lora.alpha = 5.5f;
  lora.dropout = 0.05f;
  lora.rslora = true;
  lora.targets = {"c_fc", "c_proj"};
  lora.num_layers = 1;
  LoraAdapter adapter = init_lora_adapter(lora, config, 3);
  adapter.base_model = "somewhere/tiny-gpt2";
  for (LoraModule& module : adapter.modules) module.b = testing::random_values(module.b.size(), 9);
  testing::TempDir temp;
  write_peft_adapter(adapter, config, temp.path());
  nlohmann::json written = nlohmann::json::parse(testing::read_file(temp / "adapter_config.json"));
  EXPECT_EQ(written["layers_to_transform"], nlohmann::json::array({1}));
  EXPECT_EQ(written["lora_alpha"].dump(), "5.5");
  EXPECT_EQ(written["lora_dropout"].dump(), "0.05");
  EXPECT_EQ(written["fan_in_fan_out"], true);
  LoraAdapter back = read_peft_adapter(temp.path(), config);
  EXPECT_EQ(back.config.rank, 3);
  EXPECT_EQ(back.config.alpha, 5.5f);
  EXPECT_EQ(back.config.dropout, 0.05f);
  EXPECT_TRUE(back.config.rslora);
  EXPECT_EQ(back.config.targets, lora.targets);
  EXPECT_EQ(back.config.num_layers, 1);
  EXPECT_EQ(back.base_model, adapter.base_model);
  ASSERT_EQ(back.modules.size(), adapter.modules.size());
  for (size_t i = 0; i < back.modules.size(); ++i) {
    EXPECT_EQ(back.modules[i].name, adapter.modules[i].name);
    EXPECT_EQ(back.modules[i].target, adapter.modules[i].target);
    EXPECT_EQ(back.modules[i].a, adapter.modules[i].a);
    EXPECT_EQ(back.modules[i].b, adapter.modules[i].b);
  }
}

TEST(LoraRoundTrip, AllLinearIsSavedExpanded) {
  const ModelConfig config = config_of("tiny-smol");
  LoraConfig lora;
  lora.targets = {"all-linear"};
  testing::TempDir temp;
  write_peft_adapter(init_lora_adapter(lora, config, 1), config, temp.path());
  nlohmann::json written = nlohmann::json::parse(testing::read_file(temp / "adapter_config.json"));
  EXPECT_EQ(written["target_modules"].size(), 7u);
  EXPECT_EQ(written["lora_alpha"].dump(), "16");
  EXPECT_EQ(read_peft_adapter(temp.path(), config).modules.size(), 14u);
}

// A copy of a fixture adapter with its config edited by `edit`.
std::filesystem::path edited_adapter(const testing::TempDir& temp,
                                     const std::function<void(nlohmann::json&)>& edit) {
  testing::copy_directory(model_path("tiny-llama") / "lora", temp / "lora");
  nlohmann::json config =
      nlohmann::json::parse(testing::read_file(temp / "lora/adapter_config.json"));
  edit(config);
  testing::write_file(temp / "lora/adapter_config.json", config.dump(2));
  return temp / "lora";
}

std::string error_of(const std::filesystem::path& directory, const ModelConfig& config) {
  try {
    read_peft_adapter(directory, config);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(LoraErrors, UnsupportedSettingsAreNamed) {
  const ModelConfig config = config_of("tiny-llama");
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::string expected;
  };
  std::vector<Case> cases = {
      {[](nlohmann::json& c) {
         c["rank_pattern"] = {{"q_proj", 8}};
       },
       "rank_pattern"},
      {[](nlohmann::json& c) {
         c["alpha_pattern"] = {{"q_proj", 8}};
       },
       "alpha_pattern"},
      {[](nlohmann::json& c) { c["use_dora"] = true; }, "use_dora"},
      {[](nlohmann::json& c) { c["bias"] = "all"; }, "bias 'all'"},
      {[](nlohmann::json& c) { c["modules_to_save"] = {"lm_head"}; }, "modules_to_save"},
      {[](nlohmann::json& c) { c["r"] = 8; }, "expected [8, in]"},
      {[](nlohmann::json& c) { c["target_modules"] = {"q_proj"}; }, "not one this 3-layer"},
      {[](nlohmann::json& c) {
         c["target_modules"] = {"q_proj",    "k_proj",  "v_proj",    "o_proj",
                                "gate_proj", "up_proj", "down_proj", "w_pack"};
       },
       "'w_pack' matches no module"},
      {[](nlohmann::json& c) {
         c["layers_to_transform"] = {0, 2};
       },
       "only a run"},
  };
  for (const Case& c : cases) {
    testing::TempDir temp;
    std::string message = error_of(edited_adapter(temp, c.edit), config);
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
}

TEST(LoraErrors, WeightsThatDoNotFitTheModel) {
  testing::TempDir temp;
  auto directory = edited_adapter(temp, [](nlohmann::json&) {});
  // Another model's shapes: tiny-smol's hidden size is 48, and it has 2 layers.
  std::string message = error_of(directory, config_of("tiny-smol"));
  EXPECT_NE(message.find("module 'base_model.model.model.layers."), std::string::npos) << message;
  // A missing half.
  SafetensorsFile file = SafetensorsFile::open(directory / "adapter_model.safetensors");
  std::vector<HostTensor> kept;
  for (const HostTensor& tensor : file.tensors()) {
    if (tensor.name != "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight") {
      kept.push_back(tensor);
    }
  }
  write_safetensors(temp / "kept.safetensors", kept);
  std::filesystem::rename(temp / "kept.safetensors", directory / "adapter_model.safetensors");
  message = error_of(directory, config_of("tiny-llama"));
  EXPECT_NE(message.find("has no 'base_model.model.model.layers.1.mlp.up_proj.lora_B.weight'"),
            std::string::npos)
      << message;
  // A key that is no LoRA weight.
  kept.push_back(make_host_tensor("base_model.model.lm_head.weight", {1}, std::vector<float>{1}));
  write_safetensors(directory / "adapter_model.safetensors", kept);
  message = error_of(directory, config_of("tiny-llama"));
  EXPECT_NE(message.find("'base_model.model.lm_head.weight' is not a LoRA weight"),
            std::string::npos)
      << message;
}

TEST(LoraErrors, WrongShapeAgainstTheModel) {
  const ModelConfig config = config_of("tiny-llama");
  LoraConfig lora;
  lora.targets = {"k_proj"};
  LoraAdapter adapter = init_lora_adapter(lora, config, 1);
  adapter.modules[0].out = 64;  // q's width, not k's 32
  adapter.modules[0].b.resize(64 * 8);
  testing::TempDir temp;
  try {
    write_peft_adapter(adapter, config, temp.path());
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what())
                  .find("maps 64 -> 64 features, the model's "
                        "self_attn.k_proj maps 64 -> 32"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace flow2
