#include <nlohmann/json.hpp>

#include <set>

#include "flow2/atomic_file.h"
#include "flow2/error.h"
#include "flow2/safetensors.h"

namespace flow2 {

void write_safetensors(const std::filesystem::path& path, std::span<const HostTensor> tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& tensor : tensors) {
    check(names.insert(tensor.name).second, "{}: tensor '{}' given twice", path.string(),
          tensor.name);
    uint64_t size = static_cast<uint64_t>(tensor.numel()) * dtype_size(tensor.dtype);
    check(size == tensor.bytes.size(), "{}: tensor '{}' has {} bytes, its {} {} needs {}",
          path.string(), tensor.name, tensor.bytes.size(), dtype_name(tensor.dtype),
          shape_string(tensor.shape), size);
    header[tensor.name] = {{"dtype", dtype_name(tensor.dtype)},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  // Pad with spaces so that the data starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::byte length[8];
  uint64_t header_size = text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::byte>((header_size >> (8 * i)) & 0xff);

  AtomicFileWriter writer(path);
  writer.write(std::span<const std::byte>(length, 8));
  writer.write(text);
  for (const auto& tensor : tensors) writer.write(tensor.bytes);
  writer.commit();
}

}  // namespace flow2
