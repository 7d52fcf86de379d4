#include "training_checkpoint.h"

#include "flow2/error.h"
#include "flow2/safetensors.h"

namespace flow2 {
namespace {

constexpr const char* kMetadataKey = "flow2.training";

std::vector<float> read_values(const SafetensorsFile& file, const std::string& name, size_t size) {
  const HostTensor& tensor = file.get(name);
  check(tensor.dtype == DType::F32 && static_cast<size_t>(tensor.numel()) == size,
        "cannot resume from {}: {} should be F32 with {} elements (other settings?)", file.source(),
        name, size);
  return tensor.to_f32();
}

}  // namespace

std::filesystem::path training_state_path(const std::filesystem::path& output_dir) {
  return output_dir / "training_state.safetensors";
}

void save_training_checkpoint(const std::filesystem::path& path,
                              const std::vector<ParameterView>& parameters,
                              const AdamWState& optimizer, const TrainingPosition& position,
                              const nlohmann::json& options) {
  std::vector<HostTensor> tensors;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const ParameterView& p = parameters[i];
    Shape shape{static_cast<int64_t>(p.size)};
    tensors.push_back(make_host_tensor(p.name, shape, {p.value, p.size}));
    tensors.push_back(make_host_tensor(p.name + ".exp_avg", shape, optimizer.exp_avg[i]));
    tensors.push_back(make_host_tensor(p.name + ".exp_avg_sq", shape, optimizer.exp_avg_sq[i]));
  }
  nlohmann::json meta = {{"step", position.step},
                         {"micro_batch", position.micro_batch},
                         {"epoch", position.epoch},
                         {"batch", position.batch},
                         {"rng", {{"seed", position.seed}, {"micro_batch", position.micro_batch}}},
                         {"optimizer_step", optimizer.step},
                         {"options", options}};
  write_safetensors(path, tensors, {{kMetadataKey, meta.dump()}});
}

TrainingCheckpoint load_training_checkpoint(const std::filesystem::path& path,
                                            const std::vector<ParameterView>& parameters) {
  check(std::filesystem::exists(path), "cannot resume: {} does not exist", path.string());
  SafetensorsFile file = SafetensorsFile::open(path);
  auto found = file.metadata().find(kMetadataKey);
  check(found != file.metadata().end(), "{}: not a flow2 training checkpoint", path.string());
  TrainingCheckpoint checkpoint;
  try {
    nlohmann::json meta = nlohmann::json::parse(found->second);
    checkpoint.position.step = meta.at("step").get<int64_t>();
    checkpoint.position.micro_batch = meta.at("micro_batch").get<int64_t>();
    checkpoint.position.epoch = meta.at("epoch").get<int64_t>();
    checkpoint.position.batch = meta.at("batch").get<int64_t>();
    checkpoint.position.seed = meta.at("rng").at("seed").get<uint64_t>();
    checkpoint.optimizer.step = meta.at("optimizer_step").get<int64_t>();
    checkpoint.options = meta.at("options");
  } catch (const nlohmann::json::exception& error) {
    fail("{}: bad training metadata: {}", path.string(), error.what());
  }
  check(file.tensors().size() == 3 * parameters.size(),
        "cannot resume from {}: it holds {} tensors, expected {} (3 per trainable parameter)",
        path.string(), file.tensors().size(), 3 * parameters.size());
  for (const auto& p : parameters) {
    checkpoint.values.push_back(read_values(file, p.name, p.size));
    checkpoint.optimizer.exp_avg.push_back(read_values(file, p.name + ".exp_avg", p.size));
    checkpoint.optimizer.exp_avg_sq.push_back(read_values(file, p.name + ".exp_avg_sq", p.size));
  }
  return checkpoint;
}

}  // namespace flow2
