// Helpers for the LoRA inference, fuse and eval tests: the fixture models with a PEFT adapter
// and their reference logits (tests/data/models/<m>/lora_reference.safetensors).
#pragma once

#include <string>
#include <vector>

#include "flow2/batcher.h"
#include "flow2/model.h"
#include "flow2/safetensors.h"

namespace flow2::testing {

struct LoraCase {
  std::string model;
  double tolerance;  // max |logit error| FIXTURES_README allows the model's plain logits
};

std::vector<LoraCase> lora_cases();

// Runs each row of the reference input_ids over its real length (attention_mask 1; right
// padding) and returns the largest |logit - logits_with_adapter| there.
double max_reference_logit_error(Model& model, const SafetensorsFile& reference);

// The reference input as a Batch: label_mask 1 where labels != -100, lengths from the mask.
Batch lora_reference_batch(const SafetensorsFile& reference);

}  // namespace flow2::testing
