// Converting a checkpoint to GGUF as llama.cpp lays it out: llama-family tensors under ggml
// names, q/k rows in llama.cpp's interleaved RoPE order (GPT-2: Conv1D weights transposed to
// [out, in], fused qkv kept), hyper-parameters and the byte-level vocabulary in the metadata;
// 2-D weights optionally quantized.
#pragma once

#include <filesystem>
#include <optional>

#include "flow2/dtype.h"
#include "flow2/model.h"

namespace flow2 {

struct GgufExportOptions {
  // The type of 2-D weights: F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K or Q6_K. Matrices whose rows
  // are not whole blocks fall back: Q4_K to Q4_1, Q5_K and Q6_K to Q8_0 (or F16 where rows are not
  // whole blocks of 32 either), the 32-element types to F32. Norm weights and biases stay F32.
  DType weight_type = DType::F32;
};

// Writes `checkpoint` (a Hugging Face llama, mistral or gpt2 directory with its tokenizer.json)
// to `path` atomically. Features the GGUF architecture cannot express are errors.
void export_gguf(const Checkpoint& checkpoint, const std::filesystem::path& path,
                 const GgufExportOptions& options);

}  // namespace flow2
