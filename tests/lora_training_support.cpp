#include "lora_training_support.h"

#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <regex>

#include "flow2/quant.h"
#include "flow2/safetensors.h"
#include "lora_fixture_support.h"
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
  return lora_reference_batch(SafetensorsFile::open(reference_file));
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
