// A fresh LoRA adapter initialized as PEFT does (init_lora_weights=True).
#include <cmath>
#include <random>

#include "flow2/lora.h"

namespace flow2 {

LoraAdapter init_lora_adapter(const LoraConfig& config, const ModelConfig& model_config,
                              uint64_t seed) {
  LoraAdapter adapter;
  adapter.config = config;
  adapter.modules = plan_lora_modules(config, model_config);
  std::mt19937_64 rng(seed);
  for (LoraModule& module : adapter.modules) {
    // kaiming_uniform_(a=sqrt(5)) on A [rank, in]: gain sqrt(2 / (1 + 5)) times sqrt(3 / in).
    const float bound = 1.0f / std::sqrt(static_cast<float>(module.in));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    module.a.resize(static_cast<size_t>(config.rank * module.in));
    for (float& value : module.a) value = uniform(rng);
    // B = 0: the adapter starts as a no-op.
    module.b.assign(static_cast<size_t>(module.out * config.rank), 0.0f);
  }
  return adapter;
}

}  // namespace flow2
