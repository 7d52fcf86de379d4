// The weights of a decoder-only transformer, in one layout for every supported architecture:
// Linear weights are [out, in]; an undefined Tensor marks a part the architecture lacks.
#pragma once

#include <vector>

#include "flow2/backend.h"
#include "flow2/weight_store.h"

namespace flow2 {

struct Linear {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
  // A LoRA adapter on this layer (inference): y += (x lora_a^T) lora_b^T, with lora_a [r, in]
  // and lora_b [out, r] already multiplied by the adapter's scaling. Undefined: none.
  Tensor lora_a{};
  Tensor lora_b{};
};

struct Norm {
  Tensor weight;
  Tensor bias;  // defined: LayerNorm; undefined: RMSNorm
};

struct DecoderLayer {
  Norm attention_norm;
  Linear q, k, v, o;
  Norm mlp_norm;
  Linear gate;  // undefined for a plain (non-gated) MLP
  Linear up;
  Linear down;
};

struct DecoderWeights {
  Tensor token_embedding;     // [vocab, hidden]
  Tensor position_embedding;  // [positions, hidden] for learned positions, else undefined
  std::vector<DecoderLayer> layers;
  Norm final_norm;
  Linear lm_head;
};

// Llama, Mistral, Qwen2: HF names model.layers.N.self_attn.q_proj.weight, ...
DecoderWeights bind_llama_weights(const WeightStore& store, const ModelConfig& config,
                                  Backend& backend);
// GPT-2 / DialoGPT: Conv1D weights stored [in, out] and a fused c_attn, rearranged on load.
DecoderWeights bind_gpt2_weights(const WeightStore& store, const ModelConfig& config,
                                 Backend& backend);

}  // namespace flow2
