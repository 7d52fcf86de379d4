#include "flow2/error.h"
#include "flow2/model.h"
#include "io/mlx_quantization.h"

namespace flow2 {

Checkpoint open_checkpoint(const std::filesystem::path& path) {
  check(std::filesystem::exists(path), "{}: no such file or directory", path.string());
  if (std::filesystem::is_regular_file(path) && path.extension() == ".gguf") {
    return open_gguf_checkpoint(path);
  }
  check(std::filesystem::is_directory(path),
        "{}: expected a model directory (config.json + safetensors) or a .gguf file",
        path.string());
  ModelConfig config = load_model_config(path);
  WeightStore weights = open_safetensors_weights(path);
  // MLX quantized checkpoints: each weight/scales/biases triple becomes one compact weight.
  unpack_mlx_weights(weights, read_mlx_quantization(path));
  return Checkpoint{path, std::move(config), std::move(weights), nullptr};
}

}  // namespace flow2
