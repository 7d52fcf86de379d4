// Which modules a LoRA config adapts, matched the way PEFT matches target_modules.
#include <fmt/format.h>

#include <algorithm>
#include <regex>

#include "flow2/error.h"
#include "flow2/lora.h"

namespace flow2 {
namespace {

struct LinearSite {
  std::string path;  // inside the layer, e.g. "self_attn.q_proj"
  int64_t in = 0, out = 0;
};

// The Linear (GPT-2: Conv1D) modules of one decoder layer, in PEFT's named_modules order.
std::vector<LinearSite> layer_sites(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size;
  const int64_t inner = c.intermediate_size;
  if (c.family == ModelFamily::Gpt2) {
    return {{"attn.c_attn", hidden, 3 * hidden},
            {"attn.c_proj", hidden, hidden},
            {"mlp.c_fc", hidden, inner},
            {"mlp.c_proj", inner, hidden}};
  }
  return {{"self_attn.q_proj", hidden, c.q_dim()},  {"self_attn.k_proj", hidden, c.kv_dim()},
          {"self_attn.v_proj", hidden, c.kv_dim()}, {"self_attn.o_proj", c.q_dim(), hidden},
          {"mlp.gate_proj", hidden, inner},         {"mlp.up_proj", hidden, inner},
          {"mlp.down_proj", inner, hidden}};
}

std::string layer_prefix(const ModelConfig& c, int64_t layer) {
  return c.family == ModelFamily::Gpt2 ? fmt::format("transformer.h.{}.", layer)
                                       : fmt::format("model.layers.{}.", layer);
}

bool is_regex(const std::vector<std::string>& targets) {
  return targets.size() == 1 && targets[0].find_first_of("*+?[](){}|\\^$") != std::string::npos;
}

// PEFT's rule for a list: the key is the target or ends in "." + target.
bool name_matches(const std::string& key, const std::string& target) {
  return key == target || key.ends_with("." + target);
}

}  // namespace

std::vector<std::string> all_linear_targets(const ModelConfig& model_config) {
  if (model_config.family == ModelFamily::Gpt2) return {"c_attn", "c_proj", "c_fc"};
  return {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
}

std::vector<LoraModule> plan_lora_modules(const LoraConfig& config,
                                          const ModelConfig& model_config) {
  check(config.rank > 0, "LoRA rank must be positive, not {}", config.rank);
  check(!config.targets.empty(), "LoRA target_modules is empty");
  const int64_t layers = model_config.num_layers;
  check(config.num_layers == -1 || (config.num_layers > 0 && config.num_layers <= layers),
        "LoRA layers: {} requested, the model has {}", config.num_layers, layers);
  std::vector<std::string> targets = config.targets;
  if (targets.size() == 1 && targets[0] == "all-linear") {
    targets = all_linear_targets(model_config);
  }
  for (const std::string& target : targets) {
    check(target != "lm_head" && target != "all-linear",
          "LoRA target '{}' is not supported (the output head is never adapted; "
          "all-linear must be the only entry)",
          target);
  }
  const bool regex = is_regex(targets);
  std::regex pattern;
  if (regex) pattern = std::regex(targets[0], std::regex::ECMAScript);
  std::vector<bool> used(targets.size(), false);
  std::vector<LoraModule> modules;
  const int64_t first = config.num_layers == -1 ? 0 : layers - config.num_layers;
  for (int64_t layer = first; layer < layers; ++layer) {
    const std::string prefix = layer_prefix(model_config, layer);
    for (const LinearSite& site : layer_sites(model_config)) {
      const std::string key = prefix + site.path;
      bool selected = false;
      if (regex) {
        selected = std::regex_match(key, pattern);
        used[0] = used[0] || selected;
      } else {
        for (size_t t = 0; t < targets.size(); ++t) {
          if (name_matches(key, targets[t])) selected = used[t] = true;
        }
      }
      if (!selected) continue;
      LoraModule module;
      module.name = "base_model.model." + key;
      module.layer = layer;
      module.target = site.path;
      module.in = site.in;
      module.out = site.out;
      modules.push_back(std::move(module));
    }
  }
  for (size_t t = 0; t < targets.size(); ++t) {
    check(used[t], "LoRA target '{}' matches no module of this {} model (known: {})", targets[t],
          model_config.model_type, fmt::join(all_linear_targets(model_config), ", "));
  }
  return modules;
}

}  // namespace flow2
