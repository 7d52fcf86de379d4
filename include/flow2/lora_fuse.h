// Fusing a LoRA adapter into its base model: W + scaling * B A for every adapted module, written
// as a Hugging Face checkpoint in the original names and layouts (GPT-2's Conv1D [in, out] and
// fused c_attn included).
#pragma once

#include <filesystem>
#include <optional>
#include <vector>

#include "flow2/lora.h"
#include "flow2/model.h"

namespace flow2 {

struct FuseOptions {
  // F32, F16 or BF16. Unset: the base's dtype when all its weights share one of those, else F32
  // (quantized bases are dequantized).
  std::optional<DType> dtype;
};

// Every tensor of `base` in Hugging Face names and layout, the adapted weights merged in float32
// and all floating tensors converted to `dtype`, sorted by name.
std::vector<HostTensor> fused_weights(const Checkpoint& base, const LoraAdapter& adapter,
                                      DType dtype);

// The dtype FuseOptions::dtype defaults to for `base`.
DType default_fuse_dtype(const Checkpoint& base);

// Writes the fused model to `out` (which must not exist, or be an empty directory):
// model.safetensors, config.json (torch_dtype updated, quantization dropped; generated for a
// GGUF base), generation_config.json and the tokenizer files of the base (else of the adapter
// directory, where trainers often save them). Everything goes to a temporary sibling
// directory first, renamed to `out` when complete. Returns the names of the files written.
std::vector<std::string> fuse_lora(const Checkpoint& base, const LoraAdapter& adapter,
                                   const std::filesystem::path& adapter_directory,
                                   const std::filesystem::path& out, const FuseOptions& options);

}  // namespace flow2
