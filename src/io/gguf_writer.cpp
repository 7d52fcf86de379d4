// Writing GGUF v3: header, metadata, tensor infos, then each tensor's data aligned.
#include <cstring>

#include "flow2/atomic_file.h"
#include "flow2/error.h"
#include "flow2/gguf.h"

namespace flow2 {
namespace {

class Buffer {
 public:
  template <typename T>
  void put(T value) {
    const auto* bytes = reinterpret_cast<const char*>(&value);
    data_.append(bytes, sizeof(T));
  }
  void put_string(const std::string& text) {
    put<uint64_t>(text.size());
    data_.append(text);
  }
  void pad_to(size_t alignment) {
    data_.append((alignment - data_.size() % alignment) % alignment, '\0');
  }
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

void put_value(Buffer& out, const GgufValue& value, const std::string& key) {
  switch (value.type) {
    case GgufType::U8:
      out.put<uint8_t>(static_cast<uint8_t>(value.as_uint(key)));
      break;
    case GgufType::I8:
      out.put<int8_t>(static_cast<int8_t>(value.as_int(key)));
      break;
    case GgufType::U16:
      out.put<uint16_t>(static_cast<uint16_t>(value.as_uint(key)));
      break;
    case GgufType::I16:
      out.put<int16_t>(static_cast<int16_t>(value.as_int(key)));
      break;
    case GgufType::U32:
      out.put<uint32_t>(static_cast<uint32_t>(value.as_uint(key)));
      break;
    case GgufType::I32:
      out.put<int32_t>(static_cast<int32_t>(value.as_int(key)));
      break;
    case GgufType::F32:
      out.put<float>(static_cast<float>(value.as_float(key)));
      break;
    case GgufType::BOOL:
      out.put<uint8_t>(value.as_bool(key) ? 1 : 0);
      break;
    case GgufType::STRING:
      out.put_string(value.as_string(key));
      break;
    case GgufType::U64:
      out.put<uint64_t>(value.as_uint(key));
      break;
    case GgufType::I64:
      out.put<int64_t>(value.as_int(key));
      break;
    case GgufType::F64:
      out.put<double>(value.as_float(key));
      break;
    case GgufType::ARRAY: {
      const GgufArray& array = value.as_array(key);
      out.put<uint32_t>(static_cast<uint32_t>(array.element_type));
      out.put<uint64_t>(array.items.size());
      for (const auto& item : array.items) {
        check(item.type == array.element_type, "GGUF key '{}': array items of mixed types", key);
        put_value(out, item, key);
      }
      break;
    }
  }
}

}  // namespace

void write_gguf(const std::filesystem::path& path, const GgufMetadata& metadata,
                std::span<const HostTensor> tensors, size_t alignment) {
  check(alignment > 0 && (alignment & (alignment - 1)) == 0,
        "{}: alignment {} is not a power of two", path.string(), alignment);
  GgufMetadata entries = metadata;
  bool has_alignment = false;
  for (const auto& [key, value] : entries) has_alignment |= key == "general.alignment";
  if (alignment != 32 && !has_alignment) {
    entries.emplace_back("general.alignment",
                         GgufValue::of_uint32(static_cast<uint32_t>(alignment)));
  }
  Buffer header;
  header.put<uint32_t>(0x46554747);  // "GGUF" little-endian
  header.put<uint32_t>(3);
  header.put<uint64_t>(tensors.size());
  header.put<uint64_t>(entries.size());
  for (const auto& [key, value] : entries) {
    header.put_string(key);
    header.put<uint32_t>(static_cast<uint32_t>(value.type));
    put_value(header, value, key);
  }
  uint64_t offset = 0;
  for (const auto& tensor : tensors) {
    auto type = ggml_type_of(tensor.dtype);
    check(type.has_value(), "{}: tensor '{}' is {}, which GGUF cannot hold", path.string(),
          tensor.name, dtype_name(tensor.dtype));
    check(!tensor.shape.empty() && tensor.shape.size() <= 4, "{}: tensor '{}' has {} dimensions",
          path.string(), tensor.name, tensor.shape.size());
    check(dtype_bytes(tensor.dtype, tensor.numel()) == tensor.bytes.size(),
          "{}: tensor '{}' has {} bytes, its shape needs {}", path.string(), tensor.name,
          tensor.bytes.size(), dtype_bytes(tensor.dtype, tensor.numel()));
    header.put_string(tensor.name);
    header.put<uint32_t>(static_cast<uint32_t>(tensor.shape.size()));
    for (auto it = tensor.shape.rbegin(); it != tensor.shape.rend(); ++it) {
      header.put<uint64_t>(static_cast<uint64_t>(*it));
    }
    header.put<uint32_t>(*type);
    header.put<uint64_t>(offset);
    offset += (tensor.bytes.size() + alignment - 1) / alignment * alignment;
  }
  header.pad_to(alignment);

  AtomicFileWriter writer(path);
  writer.write(header.data());
  const std::string padding(alignment, '\0');
  for (const auto& tensor : tensors) {
    writer.write(tensor.bytes);
    writer.write(std::string_view(padding).substr(
        0, (alignment - tensor.bytes.size() % alignment) % alignment));
  }
  writer.commit();
}

}  // namespace flow2
