// All tensors of a checkpoint by name, whichever files they came from (one safetensors file,
// shards listed by model.safetensors.index.json, later GGUF).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "flow2/tensor.h"

namespace flow2 {

class WeightStore {
 public:
  explicit WeightStore(std::string source = {}) : source_(std::move(source)) {}

  // Adds `tensor`; a second tensor of the same name is an error naming both files.
  void add(HostTensor tensor, const std::string& file);
  void add_file(const std::filesystem::path& file, uint64_t size);
  // Puts `tensor` in place of the one of the same name, which must exist (a weight rewritten at
  // load, e.g. an MLX quantized weight repacked); the file it came from stays recorded.
  void replace(HostTensor tensor);
  // Forgets the tensor `name` (those whose content moved into another tensor).
  void remove(const std::string& name);

  const HostTensor* find(const std::string& name) const;
  // The tensor called `name`; a missing one is an error naming the checkpoint.
  const HostTensor& get(const std::string& name) const;
  const std::map<std::string, HostTensor>& tensors() const { return tensors_; }
  // The file that holds tensor `name` (the source when unknown), for error messages.
  std::string file_of(const std::string& name) const;
  const std::vector<std::filesystem::path>& files() const { return files_; }
  uint64_t bytes_on_disk() const { return bytes_on_disk_; }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::map<std::string, HostTensor> tensors_;
  std::map<std::string, std::string> file_of_;
  std::vector<std::filesystem::path> files_;
  uint64_t bytes_on_disk_ = 0;
};

// Opens the safetensors weights of a Hugging Face model directory: model.safetensors, or the
// shards named by model.safetensors.index.json.
WeightStore open_safetensors_weights(const std::filesystem::path& directory);

}  // namespace flow2
