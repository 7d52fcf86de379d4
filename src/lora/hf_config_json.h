// A Hugging Face config.json for a llama-family ModelConfig that came from elsewhere (a GGUF
// file), so that a fused model can be loaded by transformers and flow2 alike.
#pragma once

#include <nlohmann/json.hpp>

#include "flow2/model_config.h"

namespace flow2 {

nlohmann::ordered_json hf_config_json(const ModelConfig& config);

}  // namespace flow2
