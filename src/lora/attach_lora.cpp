#include "lora/attach_lora.h"

#include <span>

#include "flow2/error.h"
#include "flow2/lora_peft.h"

namespace flow2 {
namespace {

struct Part {
  Linear* linear;
  int64_t first_row;  // of B
  int64_t rows;
};

std::vector<Part> parts_of(DecoderLayer& layer, const std::string& target, int64_t hidden) {
  if (target == "attn.c_attn") {
    return {{&layer.q, 0, hidden}, {&layer.k, hidden, hidden}, {&layer.v, 2 * hidden, hidden}};
  }
  Linear* linear = nullptr;
  if (target == "self_attn.q_proj") linear = &layer.q;
  if (target == "self_attn.k_proj") linear = &layer.k;
  if (target == "self_attn.v_proj") linear = &layer.v;
  if (target == "self_attn.o_proj" || target == "attn.c_proj") linear = &layer.o;
  if (target == "mlp.gate_proj") linear = &layer.gate;
  if (target == "mlp.up_proj" || target == "mlp.c_fc") linear = &layer.up;
  if (target == "mlp.down_proj" || target == "mlp.c_proj") linear = &layer.down;
  check(linear != nullptr, "LoRA module target '{}' is no projection flow2 knows", target);
  return {{linear, 0, -1}};
}

}  // namespace

void attach_lora(DecoderWeights& weights, const LoraAdapter& adapter, const ModelConfig& config,
                 Backend& backend) {
  LoraAdapter checked = adapter;
  check_lora_adapter(checked, config, "LoRA adapter");
  const int64_t rank = adapter.config.rank;
  const float scaling = adapter.config.scaling();
  for (const LoraModule& module : checked.modules) {
    check(static_cast<int64_t>(module.a.size()) == rank * module.in &&
              static_cast<int64_t>(module.b.size()) == module.out * rank,
          "LoRA module '{}': A or B does not hold [r, in] / [out, r] values", module.name);
    Tensor a = backend.from_host(module.a, {rank, module.in});
    DecoderLayer& layer = weights.layers.at(static_cast<size_t>(module.layer));
    for (const Part& part : parts_of(layer, module.target, config.hidden_size)) {
      const int64_t rows = part.rows < 0 ? module.out : part.rows;
      std::vector<float> b(module.b.begin() + part.first_row * rank,
                           module.b.begin() + (part.first_row + rows) * rank);
      for (float& value : b) value *= scaling;
      check(!part.linear->lora_a.defined(), "LoRA module '{}' adapts a layer twice", module.name);
      part.linear->lora_a = a;
      part.linear->lora_b = backend.from_host(b, {rows, rank});
    }
  }
}

}  // namespace flow2
