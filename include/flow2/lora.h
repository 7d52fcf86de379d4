// LoRA adapters as PEFT defines them: for each adapted Linear (named as PEFT names modules),
// y = x W^T + scaling * (x A^T) B^T with A [rank, in] and B [out, rank] in float32, scaling =
// alpha / rank (alpha / sqrt(rank) with rsLoRA). Shared by inference (--adapter), fusing,
// evaluation and the trainer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "flow2/model_config.h"

namespace flow2 {

struct LoraConfig {
  int64_t rank = 8;
  float alpha = 16.0f;
  float dropout = 0.0f;
  bool rslora = false;
  // PEFT module names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (llama
  // family), c_attn, c_proj, c_fc (GPT-2), or the single entry "all-linear". A name matches a
  // module whose path is it or ends in "." + it, as in PEFT; a single entry with regex
  // characters is a regular expression matched against the whole path
  // ("model.layers.0.self_attn.q_proj"), as PEFT treats a string target_modules.
  std::vector<std::string> targets;
  // Adapt only the last `num_layers` layers (PEFT layers_to_transform); -1: every layer.
  int64_t num_layers = -1;

  float scaling() const;
};

// One adapted module. `name` is the PEFT module path without the adapter suffix, e.g.
// "base_model.model.model.layers.0.self_attn.q_proj" or
// "base_model.model.transformer.h.0.attn.c_attn" (GPT-2's fused attention input: its B has
// 3 * hidden rows, q then k then v).
struct LoraModule {
  std::string name;
  int64_t layer = 0;
  // The module's path inside its layer: "self_attn.q_proj", "mlp.gate_proj"; GPT-2
  // "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj" (two c_proj modules per layer).
  std::string target;
  int64_t in = 0, out = 0;
  std::vector<float> a;  // [rank, in]
  std::vector<float> b;  // [out, rank]
};

struct LoraAdapter {
  LoraConfig config;
  std::string base_model;  // base_model_name_or_path
  std::vector<LoraModule> modules;

  // The module of `layer` whose target is `target` or ends in "." + `target` ("q_proj" finds
  // "self_attn.q_proj"); nullptr when there is none. A bare name that matches two modules
  // (GPT-2's "c_proj") is an error: name "attn.c_proj" or "mlp.c_proj".
  const LoraModule* find(int64_t layer, const std::string& target) const;
};

// The modules PEFT would create for `config` on a model of `model_config`, in the model's module
// order, with in/out dimensions and empty weights. Unknown or unmatched targets, the output
// head, and more layers than the model has are errors.
std::vector<LoraModule> plan_lora_modules(const LoraConfig& config,
                                          const ModelConfig& model_config);

// A fresh adapter as PEFT initializes one: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform with
// a = sqrt(5)), B = 0, so the adapted model starts equal to the base model.
LoraAdapter init_lora_adapter(const LoraConfig& config, const ModelConfig& model_config,
                              uint64_t seed);

// The module names "all-linear" stands for on a model of this family (every Linear or Conv1D
// of the decoder layers; never the output head).
std::vector<std::string> all_linear_targets(const ModelConfig& model_config);

}  // namespace flow2
