// Reads PEFT LoRA adapter directories, refusing every setting flow2 would silently get wrong.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/json_fields.h"
#include "flow2/error.h"
#include "flow2/lora_peft.h"
#include "flow2/safetensors.h"

namespace flow2 {
namespace {

using nlohmann::json;

bool present(const json& config, const std::string& key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return false;
  if (it->is_object() || it->is_array() || it->is_string()) return !it->empty();
  return true;
}

// Settings whose effect flow2 does not implement: any non-default value is an error.
void refuse_unsupported(const json& config, const std::string& source) {
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    check(!present(config, key),
          "{}: '{}' is not supported (flow2 uses one rank and one alpha for every module)", source,
          key);
  }
  for (const char* key : {"use_dora", "lora_bias", "use_qalora"}) {
    auto value = optional_bool(config, key, source);
    check(!value.value_or(false), "{}: '{}' is not supported", source, key);
  }
  auto bias = optional_string(config, "bias", source);
  check(bias.value_or("none") == "none",
        "{}: bias '{}' is not supported (only \"none\": no trained biases)", source, *bias);
  for (const char* key : {"modules_to_save", "layer_replication", "trainable_token_indices",
                          "target_parameters", "exclude_modules", "layers_pattern"}) {
    check(!present(config, key), "{}: '{}' is not supported", source, key);
  }
  auto type = optional_string(config, "peft_type", source);
  check(type.value_or("LORA") == "LORA", "{}: peft_type '{}' is not LoRA", source, *type);
}

std::vector<std::string> read_targets(const json& config, const std::string& source) {
  auto it = config.find("target_modules");
  if (it == config.end() || it->is_null()) return {};
  if (it->is_string()) return {it->get<std::string>()};
  check(it->is_array(), "{}: 'target_modules' must be a list or a string, got {}", source,
        it->dump());
  std::vector<std::string> targets;
  for (const json& entry : *it) {
    check(entry.is_string(), "{}: 'target_modules' entry {} is not a string", source, entry.dump());
    targets.push_back(entry.get<std::string>());
  }
  return targets;
}

// layers_to_transform as "the last N layers"; resolved against the model in check_lora_adapter.
std::vector<int64_t> read_layers(const json& config, const std::string& source) {
  auto it = config.find("layers_to_transform");
  if (it == config.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {it->get<int64_t>()};
  check(it->is_array(), "{}: 'layers_to_transform' must be an integer or a list", source);
  std::vector<int64_t> layers;
  for (const json& entry : *it) {
    check(entry.is_number_integer(), "{}: 'layers_to_transform' entry {} is not an integer", source,
          entry.dump());
    layers.push_back(entry.get<int64_t>());
  }
  return layers;
}

LoraConfig read_config(const json& config, const std::string& source,
                       std::vector<int64_t>& layers) {
  check(config.is_object(), "{}: expected a JSON object", source);
  refuse_unsupported(config, source);
  LoraConfig lora;
  lora.rank = required_int(config, "r", source);
  check(lora.rank > 0, "{}: 'r' must be positive, got {}", source, lora.rank);
  lora.alpha = static_cast<float>(optional_number(config, "lora_alpha", source).value_or(8.0));
  lora.dropout = static_cast<float>(optional_number(config, "lora_dropout", source).value_or(0.0));
  lora.rslora = optional_bool(config, "use_rslora", source).value_or(false);
  lora.targets = read_targets(config, source);
  layers = read_layers(config, source);
  if (!layers.empty()) lora.num_layers = static_cast<int64_t>(layers.size());
  return lora;
}

struct ModuleKey {
  std::string module;  // without ".lora_A.weight"
  bool is_a = false;
};

ModuleKey parse_key(const std::string& key, const std::string& source) {
  static const std::regex pattern(R"((.+)\.lora_([AB])\.weight)");
  std::smatch match;
  check(std::regex_match(key, match, pattern),
        "{}: tensor '{}' is not a LoRA weight (expected '<module>.lora_A.weight' or "
        "'<module>.lora_B.weight'; DoRA, embeddings and modules_to_save are not supported)",
        source, key);
  return {match[1].str(), match[2].str() == "A"};
}

void parse_module_name(LoraModule& module, const std::string& source) {
  static const std::regex pattern(
      R"(base_model\.model\.(?:model\.layers|transformer\.h)\.(\d+)\.(.+))");
  std::smatch match;
  check(std::regex_match(module.name, match, pattern),
        "{}: module '{}' is not a projection of a decoder layer (expected "
        "base_model.model.model.layers.N.* or base_model.model.transformer.h.N.*)",
        source, module.name);
  module.layer = std::stoll(match[1].str());
  module.target = match[2].str();
}

LoraModule read_module(const SafetensorsFile& file, const std::string& name, int64_t rank) {
  const std::string a_key = name + ".lora_A.weight";
  const std::string b_key = name + ".lora_B.weight";
  const HostTensor* a = file.find(a_key);
  const HostTensor* b = file.find(b_key);
  check(a != nullptr, "{}: '{}' has no '{}'", file.source(), b_key, a_key);
  check(b != nullptr, "{}: '{}' has no '{}'", file.source(), a_key, b_key);
  for (const HostTensor* tensor : {a, b}) {
    check(
        tensor->dtype == DType::F32 || tensor->dtype == DType::F16 || tensor->dtype == DType::BF16,
        "{}: '{}' is {}, expected F32, F16 or BF16", file.source(), tensor->name,
        dtype_name(tensor->dtype));
    check(tensor->shape.size() == 2, "{}: '{}' has shape {}, expected a matrix", file.source(),
          tensor->name, shape_string(tensor->shape));
  }
  check(a->shape[0] == rank, "{}: '{}' has shape {}, expected [{}, in] (r = {})", file.source(),
        a_key, shape_string(a->shape), rank, rank);
  check(b->shape[1] == rank, "{}: '{}' has shape {}, expected [out, {}] (r = {})", file.source(),
        b_key, shape_string(b->shape), rank, rank);
  LoraModule module;
  module.name = name;
  module.in = a->shape[1];
  module.out = b->shape[0];
  module.a = a->to_f32();
  module.b = b->to_f32();
  parse_module_name(module, file.source());
  return module;
}

}  // namespace

void check_lora_adapter(LoraAdapter& adapter, const ModelConfig& model_config,
                        const std::string& source) {
  std::vector<LoraModule> plan = plan_lora_modules(adapter.config, model_config);
  std::map<std::string, size_t> order;
  for (size_t i = 0; i < plan.size(); ++i) order[plan[i].name] = i;
  for (const LoraModule& module : adapter.modules) {
    auto it = order.find(module.name);
    check(it != order.end(),
          "{}: module '{}' is not one this {}-layer {} model has under target_modules {}{}", source,
          module.name, model_config.num_layers, model_config.model_type,
          fmt::join(adapter.config.targets, ", "),
          adapter.config.num_layers == -1
              ? ""
              : fmt::format(" in its last {} layers", adapter.config.num_layers));
    const LoraModule& expected = plan[it->second];
    check(module.in == expected.in && module.out == expected.out,
          "{}: module '{}' maps {} -> {} features, the model's {} maps {} -> {} "
          "(lora_A is [r, in], lora_B is [out, r])",
          source, module.name, module.in, module.out, expected.target, expected.in, expected.out);
  }
  for (const LoraModule& expected : plan) {
    bool found = std::any_of(adapter.modules.begin(), adapter.modules.end(),
                             [&](const LoraModule& m) { return m.name == expected.name; });
    check(found, "{}: target_modules selects '{}' but there is no '{}.lora_A.weight'", source,
          expected.name, expected.name);
  }
  std::sort(adapter.modules.begin(), adapter.modules.end(),
            [&](const LoraModule& x, const LoraModule& y) {
              return order.at(x.name) < order.at(y.name);
            });
}

LoraAdapter read_peft_adapter(const std::filesystem::path& directory,
                              const ModelConfig& model_config) {
  LoraAdapter adapter = read_peft_adapter(directory);
  check_lora_adapter(adapter, model_config, directory.string());
  return adapter;
}

LoraAdapter read_peft_adapter(const std::filesystem::path& directory) {
  check(std::filesystem::is_directory(directory),
        "{}: expected a PEFT adapter directory (adapter_config.json, adapter_model.safetensors)",
        directory.string());
  const std::filesystem::path config_path = directory / "adapter_config.json";
  const std::filesystem::path weights_path = directory / "adapter_model.safetensors";
  check(std::filesystem::exists(config_path), "{}: no such file", config_path.string());
  check(std::filesystem::exists(weights_path), "{}: no such file{}", weights_path.string(),
        std::filesystem::exists(directory / "adapter_model.bin")
            ? " (adapter_model.bin, a pickle, is not read: save with safe_serialization)"
            : "");
  json config = read_json_file(config_path);
  LoraAdapter adapter;
  std::vector<int64_t> layers;
  adapter.config = read_config(config, config_path.string(), layers);
  adapter.base_model =
      optional_string(config, "base_model_name_or_path", config_path.string()).value_or("");

  SafetensorsFile file = SafetensorsFile::open(weights_path);
  std::vector<std::string> names;
  for (const HostTensor& tensor : file.tensors()) {
    ModuleKey key = parse_key(tensor.name, file.source());
    if (std::find(names.begin(), names.end(), key.module) == names.end()) {
      names.push_back(key.module);
    }
  }
  check(!names.empty(), "{}: no LoRA weights", file.source());
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    adapter.modules.push_back(read_module(file, name, adapter.config.rank));
  }
  // Without target_modules PEFT used its per-model defaults: name what the file adapts.
  if (adapter.config.targets.empty()) {
    for (const LoraModule& module : adapter.modules) {
      std::string last = module.target.substr(module.target.rfind('.') + 1);
      if (std::find(adapter.config.targets.begin(), adapter.config.targets.end(), last) ==
          adapter.config.targets.end()) {
        adapter.config.targets.push_back(last);
      }
    }
  }
  // layers_to_transform must be the last N layers: the file's layers tell which those are.
  if (!layers.empty()) {
    std::sort(layers.begin(), layers.end());
    for (size_t i = 1; i < layers.size(); ++i) {
      check(layers[i] == layers[i - 1] + 1,
            "{}: layers_to_transform {} is not supported: only a run of the last layers",
            config_path.string(), fmt::join(layers, ", "));
    }
    for (const LoraModule& module : adapter.modules) {
      check(std::binary_search(layers.begin(), layers.end(), module.layer),
            "{}: module '{}' is in layer {}, outside layers_to_transform", file.source(),
            module.name, module.layer);
    }
  }
  return adapter;
}

}  // namespace flow2
