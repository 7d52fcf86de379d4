// Converting a checkpoint to GGUF as llama.cpp lays it out: llama-family tensors under ggml
// names, q/k rows in llama.cpp's interleaved RoPE order, hyper-parameters and the byte-level
// vocabulary in the metadata; 2-D weights optionally quantized.
#pragma once

#include <filesystem>
#include <optional>

#include "flow2/dtype.h"
#include "flow2/model.h"

namespace flow2 {

struct GgufExportOptions {
  // The type of 2-D weights whose rows are whole blocks: F32, F16, Q8_0, Q4_0 or Q4_1.
  // Norm weights and biases stay F32.
  DType weight_type = DType::F32;
};

// Writes `checkpoint` (a Hugging Face directory of the llama family with its tokenizer.json) to
// `path` atomically.
void export_gguf(const Checkpoint& checkpoint, const std::filesystem::path& path,
                 const GgufExportOptions& options);

}  // namespace flow2
