#include "adapter_option.h"

#include "flow2/lora_peft.h"

namespace flow2::cli {

void add_adapter_option(CLI::App& command, std::string& adapter) {
  command.add_option("--adapter", adapter,
                     "PEFT LoRA adapter directory (adapter_config.json, "
                     "adapter_model.safetensors) applied on top of the model");
}

std::unique_ptr<Model> load_model(const Checkpoint& checkpoint, Backend& backend,
                                  const std::string& adapter) {
  if (adapter.empty()) return Model::load(checkpoint, backend);
  LoraAdapter lora = read_peft_adapter(adapter, checkpoint.config);
  return Model::load(checkpoint, backend, &lora);
}

}  // namespace flow2::cli
