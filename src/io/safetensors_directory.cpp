// A Hugging Face model directory's weights: model.safetensors or an index and its shards.
#include <nlohmann/json.hpp>

#include <set>

#include "core/json_fields.h"
#include "flow2/error.h"
#include "flow2/safetensors.h"
#include "flow2/weight_store.h"

namespace flow2 {
namespace {

namespace fs = std::filesystem;

void add_all(WeightStore& store, const SafetensorsFile& file) {
  store.add_file(file.source(), file.file_size());
  for (const auto& tensor : file.tensors()) store.add(tensor, file.source());
}

// Shard names must stay inside the model directory.
fs::path shard_path(const fs::path& directory, const std::string& name, const std::string& index) {
  fs::path relative(name);
  check(!name.empty() && relative.is_relative() &&
            relative.lexically_normal().string().rfind("..", 0) != 0,
        "{}: shard name '{}' points outside the model directory", index, name);
  return directory / relative;
}

WeightStore open_sharded(const fs::path& directory, const fs::path& index_path) {
  const std::string index = index_path.string();
  auto document = read_json_file(index_path);
  check(document.is_object(), "{}: expected a JSON object", index);
  auto map_it = document.find("weight_map");
  check(map_it != document.end() && map_it->is_object(), "{}: missing 'weight_map' object", index);

  // Each shard is opened once; every tensor the index lists must be in the shard it names.
  std::map<std::string, std::vector<std::string>> tensors_of_shard;
  for (const auto& [tensor, shard] : map_it->items()) {
    check(shard.is_string(), "{}: weight_map entry '{}' is not a file name", index, tensor);
    tensors_of_shard[shard.get<std::string>()].push_back(tensor);
  }
  check(!tensors_of_shard.empty(), "{}: 'weight_map' is empty", index);

  WeightStore store(directory.string());
  for (const auto& [shard, listed] : tensors_of_shard) {
    fs::path path = shard_path(directory, shard, index);
    check(fs::exists(path), "{}: shard '{}' does not exist", index, shard);
    auto file = SafetensorsFile::open(path);
    for (const auto& name : listed) {
      check(file.find(name) != nullptr, "{}: tensor '{}' is listed in {} but {} does not hold it",
            index, name, index_path.filename().string(), path.string());
    }
    add_all(store, file);
  }
  return store;
}

}  // namespace

WeightStore open_safetensors_weights(const fs::path& directory) {
  auto single = directory / "model.safetensors";
  if (fs::exists(single)) {
    WeightStore store(directory.string());
    add_all(store, SafetensorsFile::open(single));
    return store;
  }
  auto index = directory / "model.safetensors.index.json";
  if (fs::exists(index)) return open_sharded(directory, index);
  if (fs::exists(directory / "pytorch_model.bin")) {
    fail("{}: only pytorch_model.bin found; flow2 reads safetensors weights", directory.string());
  }
  fail("{}: no model.safetensors or model.safetensors.index.json", directory.string());
}

}  // namespace flow2
