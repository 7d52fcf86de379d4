// Writes PEFT LoRA adapter directories byte-compatible with PEFT 0.21's save_pretrained.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "flow2/atomic_file.h"
#include "flow2/error.h"
#include "flow2/lora_peft.h"
#include "flow2/safetensors.h"

namespace flow2 {
namespace {

using nlohmann::json;

// A float as Python prints it (shortest round trip), then held as the double of that text.
json python_float(float value) {
  return std::stod(fmt::format("{}", value));
}

// lora_alpha is an int in PEFT's config unless the user gave a fraction.
json alpha_value(float alpha) {
  if (alpha == std::floor(alpha) && std::abs(alpha) < 1e9f) return static_cast<int64_t>(alpha);
  return python_float(alpha);
}

json target_modules(const LoraConfig& config, const ModelConfig& model_config) {
  if (config.targets.size() == 1 && config.targets[0] == "all-linear") {
    return all_linear_targets(model_config);  // PEFT saves the expanded names
  }
  if (config.targets.size() == 1 &&
      config.targets[0].find_first_of("*+?[](){}|\\^$") != std::string::npos) {
    return config.targets[0];  // a regular expression stays a string
  }
  return config.targets;
}

json layers_to_transform(const LoraConfig& config, const ModelConfig& model_config) {
  if (config.num_layers == -1) return nullptr;
  json layers = json::array();
  for (int64_t l = model_config.num_layers - config.num_layers; l < model_config.num_layers; ++l) {
    layers.push_back(l);
  }
  return layers;
}

}  // namespace

std::string peft_adapter_config_json(const LoraAdapter& adapter, const ModelConfig& model_config) {
  const LoraConfig& c = adapter.config;
  // Every field of PEFT 0.21's LoraConfig; nlohmann's json sorts keys as PEFT's sort_keys=True.
  json config = json::object();
  config["alora_invocation_tokens"] = nullptr;
  config["alpha_pattern"] = json::object();
  config["arrow_config"] = nullptr;
  config["auto_mapping"] = nullptr;
  config["base_model_name_or_path"] = adapter.base_model;
  config["bias"] = "none";
  config["corda_config"] = nullptr;
  config["ensure_weight_tying"] = false;
  config["eva_config"] = nullptr;
  config["exclude_modules"] = nullptr;
  config["fan_in_fan_out"] = model_config.family == ModelFamily::Gpt2;  // Conv1D stores [in, out]
  config["inference_mode"] = true;  // save_pretrained always writes true
  config["init_lora_weights"] = true;
  config["kasa_config"] = nullptr;
  config["layer_replication"] = nullptr;
  config["layers_pattern"] = nullptr;
  config["layers_to_transform"] = layers_to_transform(c, model_config);
  config["loftq_config"] = json::object();
  config["lora_alpha"] = alpha_value(c.alpha);
  config["lora_bias"] = false;
  config["lora_dropout"] = python_float(c.dropout);
  config["lora_ga_config"] = nullptr;
  config["megatron_config"] = nullptr;
  config["megatron_core"] = "megatron.core";
  config["modules_to_save"] = nullptr;
  config["monteclora_config"] = nullptr;
  config["peft_type"] = "LORA";
  config["peft_version"] = "0.21.0";
  config["qalora_group_size"] = 16;
  config["r"] = c.rank;
  config["rank_pattern"] = json::object();
  config["revision"] = nullptr;
  config["target_modules"] = target_modules(c, model_config);
  config["target_parameters"] = nullptr;
  config["task_type"] = "CAUSAL_LM";
  config["trainable_token_indices"] = nullptr;
  config["use_bdlora"] = nullptr;
  config["use_dora"] = false;
  config["use_qalora"] = false;
  config["use_rslora"] = c.rslora;
  config["velora_config"] = nullptr;
  return config.dump(2);
}

void write_peft_adapter(const LoraAdapter& adapter, const ModelConfig& model_config,
                        const std::filesystem::path& directory) {
  // The adapter must fit the model it claims to adapt: same checks as reading it back.
  LoraAdapter checked = adapter;
  check_lora_adapter(checked, model_config, "LoRA adapter to write");
  const int64_t rank = adapter.config.rank;
  std::vector<HostTensor> tensors;
  for (const LoraModule& module : checked.modules) {
    check(static_cast<int64_t>(module.a.size()) == rank * module.in &&
              static_cast<int64_t>(module.b.size()) == module.out * rank,
          "LoRA module '{}': A holds {} values and B {}, expected {} x {} and {} x {}", module.name,
          module.a.size(), module.b.size(), rank, module.in, module.out, rank);
    tensors.push_back(
        make_host_tensor(module.name + ".lora_A.weight", {rank, module.in}, module.a));
    tensors.push_back(
        make_host_tensor(module.name + ".lora_B.weight", {module.out, rank}, module.b));
  }
  // safetensors' Python writer orders tensors by name (all of one dtype here).
  std::sort(tensors.begin(), tensors.end(),
            [](const HostTensor& x, const HostTensor& y) { return x.name < y.name; });
  std::filesystem::create_directories(directory);
  write_safetensors(directory / "adapter_model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomically(directory / "adapter_config.json",
                        peft_adapter_config_json(checked, model_config));
}

}  // namespace flow2
