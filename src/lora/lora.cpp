// LoRA configuration and adapter lookup (see flow2/lora.h).
#include "flow2/lora.h"

#include <cmath>

#include "flow2/error.h"

namespace flow2 {

float LoraConfig::scaling() const {
  // PEFT: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
  const float r = static_cast<float>(rank);
  return rslora ? alpha / std::sqrt(r) : alpha / r;
}

const LoraModule* LoraAdapter::find(int64_t layer, const std::string& target) const {
  const std::string suffix = "." + target;
  const LoraModule* found = nullptr;
  for (const LoraModule& module : modules) {
    if (module.layer != layer) continue;
    if (module.target == target) return &module;
    if (module.target.ends_with(suffix)) {
      check(found == nullptr, "LoRA module name '{}' is ambiguous in layer {}: '{}' or '{}'",
            target, layer, found ? found->target : "", module.target);
      found = &module;
    }
  }
  return found;
}

}  // namespace flow2
