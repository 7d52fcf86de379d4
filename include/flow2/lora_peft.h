// PEFT adapter directories, as PEFT's save_pretrained writes them: adapter_config.json and
// adapter_model.safetensors with keys "<module>.lora_A.weight" [r, in] and
// "<module>.lora_B.weight" [out, r].
#pragma once

#include <filesystem>

#include "flow2/lora.h"
#include "flow2/model_config.h"

namespace flow2 {

// Reads an adapter directory. Settings flow2 cannot honour (rank_pattern, alpha_pattern,
// use_dora, bias other than "none", modules_to_save, ...) are errors that name them; so are
// missing halves, ranks other than r, and keys that are no LoRA module of a decoder layer.
// Modules keep the order of the file; `in` and `out` come from the tensor shapes.
LoraAdapter read_peft_adapter(const std::filesystem::path& directory);

// As above, then checked against the model: every module must be one target_modules selects
// (plan_lora_modules), with the model's dimensions, and every selected module must be present.
// The modules come back in the model's module order.
LoraAdapter read_peft_adapter(const std::filesystem::path& directory,
                              const ModelConfig& model_config);

// Checks `adapter` against the model as read_peft_adapter(directory, model_config) does and puts
// its modules in the model's order; `source` names the adapter in errors.
void check_lora_adapter(LoraAdapter& adapter, const ModelConfig& model_config,
                        const std::string& source);

// Writes `adapter` to `directory` (created if needed) as PEFT 0.21 would save it: every
// adapter_config.json field PEFT writes, in its order (sorted keys, two-space indent),
// target_modules expanded from "all-linear", F32 tensors sorted by key with metadata
// {"format": "pt"}. Each file is written atomically.
void write_peft_adapter(const LoraAdapter& adapter, const ModelConfig& model_config,
                        const std::filesystem::path& directory);

// The adapter_config.json text write_peft_adapter writes.
std::string peft_adapter_config_json(const LoraAdapter& adapter, const ModelConfig& model_config);

}  // namespace flow2
