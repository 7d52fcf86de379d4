// Puts a LoRA adapter's low-rank matrices on the Linear layers of bound decoder weights.
#pragma once

#include "flow2/backend.h"
#include "flow2/lora.h"
#include "model/decoder_weights.h"

namespace flow2 {

// Checks `adapter` against `config` and uploads A and scaling * B to each adapted Linear.
// GPT-2's fused c_attn module is split like its weight: B's rows q, then k, then v.
void attach_lora(DecoderWeights& weights, const LoraAdapter& adapter, const ModelConfig& config,
                 Backend& backend);

}  // namespace flow2
