// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header, then one byte buffer holding every tensor, back to back.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "flow2/tensor.h"

namespace flow2 {

class SafetensorsFile {
 public:
  // Maps `path` and validates it; tensors are zero-copy views into the mapping.
  static SafetensorsFile open(const std::filesystem::path& path);
  // Validates bytes already in memory. `source` names them in errors; `owner` keeps them alive.
  static SafetensorsFile parse(std::span<const std::byte> bytes, std::string source,
                               std::shared_ptr<const void> owner = nullptr);

  const std::string& source() const { return source_; }
  size_t file_size() const { return file_size_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensors in the order of their data offsets.
  const std::vector<HostTensor>& tensors() const { return tensors_; }
  const HostTensor* find(const std::string& name) const;
  // The tensor called `name`; throws an error naming this file when it is absent.
  const HostTensor& get(const std::string& name) const;

 private:
  std::string source_;
  size_t file_size_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<HostTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// Writes `tensors` in the given order to `path` atomically: to a temporary name in the same
// directory, flushed, then renamed, so that no half-written file is ever left at `path`.
void write_safetensors(const std::filesystem::path& path, std::span<const HostTensor> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace flow2
