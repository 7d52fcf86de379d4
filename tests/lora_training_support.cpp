#include "lora_training_support.h"

#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <regex>

#include "flow2/quant.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2::testing {

LoraAdapter read_fixture_adapter(const std::string& directory) {
  nlohmann::json config = nlohmann::json::parse(read_file(directory + "/adapter_config.json"));
  LoraAdapter adapter;
  adapter.config.rank = config["r"].get<int64_t>();
  adapter.config.alpha = config["lora_alpha"].get<float>();
  adapter.config.dropout = config["lora_dropout"].get<float>();
  adapter.config.rslora = config["use_rslora"].get<bool>();
  adapter.config.targets = config["target_modules"].get<std::vector<std::string>>();
  adapter.base_model = config["base_model_name_or_path"].get<std::string>();
  SafetensorsFile file = SafetensorsFile::open(directory + "/adapter_model.safetensors");
  const std::regex key(R"((.*\.(?:layers|h)\.(\d+)\.(.*))\.lora_A\.weight)");
  for (const HostTensor& tensor : file.tensors()) {
    std::smatch match;
    if (!std::regex_match(tensor.name, match, key)) continue;
    const HostTensor& b = file.get(match[1].str() + ".lora_B.weight");
    LoraModule module;
    module.name = match[1].str();
    module.layer = std::stoll(match[2].str());
    module.target = match[3].str();
    module.in = tensor.shape[1];
    module.out = b.shape[0];
    module.a = tensor.to_f32();
    module.b = b.to_f32();
    adapter.modules.push_back(std::move(module));
  }
  return adapter;
}

Batch reference_batch(const std::string& reference_file) {
  SafetensorsFile file = SafetensorsFile::open(reference_file);
  const HostTensor& ids = file.get("input_ids");
  std::vector<int64_t> id_values = ids.to_i64();
  std::vector<int64_t> mask = file.get("attention_mask").to_i64();
  std::vector<int64_t> labels = file.get("labels").to_i64();
  Batch batch;
  batch.rows = ids.shape[0];
  batch.columns = ids.shape[1];
  for (size_t i = 0; i < id_values.size(); ++i) {
    batch.ids.push_back(static_cast<int32_t>(id_values[i]));
    batch.label_mask.push_back(labels[i] != -100 ? 1 : 0);
    batch.segments.push_back(static_cast<int32_t>(mask[i]));
  }
  for (int64_t r = 0; r < batch.rows; ++r) {
    int32_t length = 0;
    for (int64_t t = 0; t < batch.columns; ++t) length += mask[r * batch.columns + t] ? 1 : 0;
    batch.lengths.push_back(length);
  }
  return batch;
}

std::map<std::string, std::vector<float>> gradients(TrainableModel& model) {
  std::map<std::string, std::vector<float>> result;
  for (const ParameterView& view : model.parameters()) {
    result[view.name] = std::vector<float>(view.grad, view.grad + view.size);
  }
  return result;
}

Checkpoint quantized_checkpoint(const std::string& directory, DType dtype) {
  Checkpoint checkpoint = open_checkpoint(directory);
  std::vector<HostTensor> replaced;
  for (const auto& [name, tensor] : checkpoint.weights.tensors()) {
    if (tensor.shape.size() != 2 || tensor.shape[1] % 32 != 0) continue;
    std::vector<float> values = tensor.to_f32();
    auto bytes = std::make_shared<std::vector<std::byte>>(
        dtype_bytes(dtype, static_cast<uint64_t>(values.size())));
    quantize_blocks(dtype, values.data(), values.size(), bytes->data());
    replaced.push_back(HostTensor{name, dtype, tensor.shape, *bytes, bytes});
  }
  for (HostTensor& tensor : replaced) checkpoint.weights.replace(std::move(tensor));
  return checkpoint;
}

}  // namespace flow2::testing
