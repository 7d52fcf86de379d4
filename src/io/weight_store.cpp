#include "flow2/weight_store.h"

#include "flow2/error.h"

namespace flow2 {

void WeightStore::add(HostTensor tensor, const std::string& file) {
  auto [it, inserted] = file_of_.emplace(tensor.name, file);
  check(inserted, "{}: tensor '{}' appears in both {} and {}", source_, tensor.name, it->second,
        file);
  std::string name = tensor.name;
  tensors_.emplace(std::move(name), std::move(tensor));
}

void WeightStore::add_file(const std::filesystem::path& file, uint64_t size) {
  files_.push_back(file);
  bytes_on_disk_ += size;
}

void WeightStore::replace(HostTensor tensor) {
  auto it = tensors_.find(tensor.name);
  check(it != tensors_.end(), "{}: missing tensor '{}'", source_, tensor.name);
  it->second = std::move(tensor);
}

void WeightStore::remove(const std::string& name) {
  tensors_.erase(name);
  file_of_.erase(name);
}

std::string WeightStore::file_of(const std::string& name) const {
  auto it = file_of_.find(name);
  return it == file_of_.end() ? source_ : it->second;
}

const HostTensor* WeightStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const HostTensor& WeightStore::get(const std::string& name) const {
  const HostTensor* tensor = find(name);
  check(tensor != nullptr, "{}: missing tensor '{}'", source_, name);
  return *tensor;
}

}  // namespace flow2
