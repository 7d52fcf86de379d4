// summarize_model: what a checkpoint is, from its headers (no weights are read).
#include "flow2/benchmark.h"
#include "flow2/model.h"

namespace flow2 {

ModelSummary summarize_model(const std::filesystem::path& path) {
  Checkpoint checkpoint = open_checkpoint(path);
  const ModelConfig& config = checkpoint.config;
  ModelSummary summary;
  summary.path = path.string();
  summary.name =
      path.filename().empty() ? path.parent_path().filename().string() : path.filename().string();
  summary.architecture = config.architecture.empty() ? config.model_type : config.architecture;
  summary.layers = config.num_layers;
  summary.hidden_size = config.hidden_size;
  summary.vocab_size = config.vocab_size;
  for (const auto& [name, tensor] : checkpoint.weights.tensors()) {
    summary.parameters += tensor.numel();
    summary.weight_bytes +=
        static_cast<int64_t>(dtype_bytes(tensor.dtype, static_cast<uint64_t>(tensor.numel())));
    summary.parameters_by_dtype[std::string(dtype_name(tensor.dtype))] += tensor.numel();
  }
  int64_t most = -1;
  for (const auto& [name, count] : summary.parameters_by_dtype) {
    if (count > most) summary.dtype = name, most = count;
  }
  summary.bytes_on_disk = static_cast<int64_t>(checkpoint.weights.bytes_on_disk());
  if (summary.parameters > 0) {
    summary.bits_per_weight =
        8.0 * static_cast<double>(summary.weight_bytes) / static_cast<double>(summary.parameters);
  }
  return summary;
}

}  // namespace flow2
