// Merges LoRA deltas into the base weights (W + scaling * B A) in Hugging Face layout.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "flow2/error.h"
#include "flow2/lora_fuse.h"
#include "flow2/lora_peft.h"

namespace flow2 {
namespace {

// The checkpoint tensor a PEFT module adapts: the module path without PEFT's prefix.
std::string weight_name(const LoraModule& module, const WeightStore& store) {
  std::string name = module.name.substr(std::string("base_model.model.").size()) + ".weight";
  // OpenAI's GPT-2 exports name tensors without the "transformer." prefix.
  if (!store.find(name) && name.starts_with("transformer.") &&
      store.find(name.substr(std::string("transformer.").size()))) {
    name = name.substr(std::string("transformer.").size());
  }
  return name;
}

// weight += scaling * B A, where `weight` is [out, in] or, transposed (Conv1D), [in, out].
void add_delta(std::vector<float>& weight, const LoraModule& module, int64_t rank, float scaling,
               bool transposed) {
  const int64_t in = module.in, out = module.out;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      float sum = 0.0f;
      for (int64_t r = 0; r < rank; ++r) sum += module.b[o * rank + r] * module.a[r * in + i];
      weight[transposed ? i * out + o : o * in + i] += scaling * sum;
    }
  }
}

HostTensor converted(const HostTensor& tensor, std::vector<float> values, DType dtype) {
  if (dtype == DType::F32) {
    HostTensor result = make_host_tensor(tensor.name, tensor.shape, values);
    return result;
  }
  auto storage = std::make_shared<std::vector<uint16_t>>(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    (*storage)[i] = dtype == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
  }
  HostTensor result;
  result.name = tensor.name;
  result.dtype = dtype;
  result.shape = tensor.shape;
  result.bytes = std::as_bytes(std::span<const uint16_t>(*storage));
  result.owner = storage;
  return result;
}

}  // namespace

DType default_fuse_dtype(const Checkpoint& base) {
  std::optional<DType> common;
  for (const auto& [name, tensor] : base.weights.tensors()) {
    if (!is_floating(tensor.dtype)) continue;
    if (common && *common != tensor.dtype) return DType::F32;
    common = tensor.dtype;
  }
  if (common == DType::F16 || common == DType::BF16) return *common;
  return DType::F32;
}

std::vector<HostTensor> fused_weights(const Checkpoint& base, const LoraAdapter& adapter,
                                      DType dtype) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
        "fuse: dtype {} is not one of F32, F16, BF16", dtype_name(dtype));
  const ModelConfig& config = base.config;
  check(!(base.gguf && config.family == ModelFamily::Gpt2),
        "{}: fusing into a GGUF gpt2 file is not supported (use the Hugging Face checkpoint)",
        base.path.string());
  check(config.rope.frequency_factors.empty(),
        "{}: rope_freqs (llama3 RoPE scaling) cannot be written back as a Hugging Face "
        "rope_scaling; fuse into the Hugging Face checkpoint instead",
        base.path.string());
  LoraAdapter checked = adapter;
  check_lora_adapter(checked, config, "LoRA adapter");
  std::map<std::string, const LoraModule*> adapted;
  for (const LoraModule& module : checked.modules) {
    std::string name = weight_name(module, base.weights);
    check(base.weights.find(name) != nullptr, "{}: no tensor '{}' for LoRA module '{}'",
          base.weights.source(), name, module.name);
    adapted[name] = &module;
  }
  const bool conv1d = config.family == ModelFamily::Gpt2;  // HF GPT-2 stores [in, out]
  std::vector<HostTensor> result;
  for (const auto& [name, tensor] : base.weights.tensors()) {
    if (!is_floating(tensor.dtype)) {
      result.push_back(tensor);
      continue;
    }
    auto it = adapted.find(name);
    if (it == adapted.end() && tensor.dtype == dtype) {
      result.push_back(tensor);  // unchanged: a view of the base's bytes
      continue;
    }
    std::vector<float> values = tensor.to_f32();
    if (it != adapted.end()) {
      const LoraModule& module = *it->second;
      check(tensor.numel() == module.in * module.out,
            "{}: tensor '{}' has shape {}, LoRA module '{}' maps {} -> {}",
            base.weights.file_of(name), name, shape_string(tensor.shape), module.name, module.in,
            module.out);
      add_delta(values, *it->second, checked.config.rank, checked.config.scaling(), conv1d);
    }
    result.push_back(converted(tensor, std::move(values), dtype));
  }
  std::sort(result.begin(), result.end(),
            [](const HostTensor& x, const HostTensor& y) { return x.name < y.name; });
  return result;
}

}  // namespace flow2
