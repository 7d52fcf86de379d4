// Helpers for the LoRA training tests: the fixture adapters (PEFT's files read directly), the
// PEFT reference batch, losses and gradients as plain vectors, and quantized copies of a base.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "flow2/batcher.h"
#include "flow2/lora.h"
#include "flow2/model.h"
#include "flow2/trainable.h"

namespace flow2::testing {

// adapter_config.json + adapter_model.safetensors of a PEFT adapter directory.
LoraAdapter read_fixture_adapter(const std::string& directory);
// The reference batch of lora_reference.safetensors (labels -100 -> label_mask 0).
Batch reference_batch(const std::string& reference_file);
// Every parameter's gradient by name.
std::map<std::string, std::vector<float>> gradients(TrainableModel& model);
// The checkpoint with every matrix of 32n columns re-encoded as `dtype` (QLoRA bases).
Checkpoint quantized_checkpoint(const std::string& directory, DType dtype);

}  // namespace flow2::testing
