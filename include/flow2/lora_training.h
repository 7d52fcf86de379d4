// LoRA / QLoRA fine-tuning on the CPU: a TrainableModel whose frozen base weights (any dtype the
// CPU backend holds: F32, F16, BF16, GGUF blocks) come from a checkpoint and whose only
// parameters are the adapter's A and B matrices. Forward and backward are written out per layer
// (as llm.c does) against the Backend's forward and backward ops.
#pragma once

#include <cstdint>
#include <memory>

#include "flow2/lora.h"
#include "flow2/model.h"
#include "flow2/trainable.h"

namespace flow2 {

struct LoraTrainingOptions {
  // Keep only each layer's input and recompute the layer in backward: memory of one layer's
  // activations instead of all, for about one more forward pass.
  bool grad_checkpoint = false;
};

// The adapter's a/b vectors are the parameter values (the model keeps a reference: `adapter`
// must outlive it, and the optimizer's updates land in it). Dropout is adapter.config.dropout,
// applied to the LoRA input as PEFT does (B(A(dropout(x)))), seeded by step_seed. Every module
// of the adapter must belong to the checkpoint's architecture and shapes.
std::unique_ptr<TrainableModel> make_lora_training_model(const Checkpoint& checkpoint,
                                                         LoraAdapter& adapter,
                                                         const LoraTrainingOptions& options);

}  // namespace flow2
