// MLX quantized checkpoints (mlx-lm's format, e.g. mlx-community/*-4bit): a Hugging Face
// directory whose config.json has a "quantization" object and whose quantized linear layers and
// embeddings X are stored as three tensors:
//   X.weight  uint32 [out, in * bits / 32]: the codes of each row as one little-endian bit
//             stream (element j is bits j*bits .. j*bits+bits-1, a code may straddle two words)
//   X.scales  [out, in / group_size], X.biases likewise (the model's dtype: f16, bf16 or f32)
// with w = scale * q + bias for the group_size elements of each group ("affine" mode).
//
// At load the three tensors become one X.weight that stays compact:
//   - 1 to 4 bits with group_size a multiple of 32: ggml Q4_1 blocks (32 elements, f16 d = scale,
//     f16 m = bias, a nibble per code), which the CPU matmul and embedding read directly. Exact
//     when scales and biases are f16, or bf16 within f16's range; otherwise accepted when f16
//     rounding moves no weight by more than 2^-11 of the tensor's largest magnitude.
//   - anything else (5, 6, 8 bits; odd group sizes; scales f16 cannot hold): decoded to the
//     scales' dtype (16-bit for f16/bf16 models, which the CPU backend also keeps compact, so an
//     8-bit layer takes 2 bytes a weight instead of ~1). ggml has no block type with both a
//     scale and an offset per group at 8 bits, so 8-bit codes cannot be kept as they are.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "flow2/weight_store.h"

namespace flow2 {

struct MlxQuantParams {
  int64_t group_size = 64;
  int bits = 4;
};

struct MlxQuantization {
  std::string key;  // "quantization" or "quantization_config": where config.json holds it
  MlxQuantParams defaults;
  // Per-module overrides by module path ("model.layers.0.mlp.down_proj"); nullopt: the module
  // is not quantized (config.json's `false`).
  std::map<std::string, std::optional<MlxQuantParams>> modules;

  std::optional<MlxQuantParams> params_for(const std::string& module) const;
};

// The MLX quantization section of a config.json document, or nullopt when it has none. A
// `quantization_config` naming another method (gptq, awq, ...) is an error; `source` names the
// file in errors.
std::optional<MlxQuantization> parse_mlx_quantization(const nlohmann::json& config,
                                                      const std::string& source);

// parse_mlx_quantization of `directory`/config.json.
std::optional<MlxQuantization> read_mlx_quantization(const std::filesystem::path& directory);

// Replaces every quantized module's weight/scales/biases in `store` by one compact X.weight (see
// above). Without `quantization`, a uint32 weight with scales is an error naming config.json.
void unpack_mlx_weights(WeightStore& store, const std::optional<MlxQuantization>& quantization);

// One quantized weight as a HostTensor named `name`: Q4_1 or decoded to the scales' dtype.
HostTensor mlx_dequantized_weight(const std::string& name, const HostTensor& packed,
                                  const HostTensor& scales, const HostTensor& biases,
                                  const MlxQuantParams& params, const std::string& source);

}  // namespace flow2
