// Reading GGUF: every read is bounds-checked, so a truncated or corrupt file is an error naming
// the file, the key or tensor, and what is wrong.
#include <algorithm>
#include <cstring>

#include "flow2/error.h"
#include "flow2/gguf.h"
#include "flow2/mapped_file.h"

namespace flow2 {
namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDimensions = 4;

class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, const std::string& source)
      : bytes_(bytes), source_(source) {}

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }
  std::string read_string(const char* what) {
    uint64_t length = read<uint64_t>(what);
    need(length, what);
    std::string text(reinterpret_cast<const char*>(bytes_.data() + position_), length);
    position_ += length;
    return text;
  }
  void need(uint64_t count, const char* what) const {
    check(count <= bytes_.size() - position_,
          "{}: truncated at byte {} reading {} ({} bytes needed, {} left)", source_, position_,
          what, count, bytes_.size() - position_);
  }
  size_t position() const { return position_; }
  size_t remaining() const { return bytes_.size() - position_; }

 private:
  std::span<const std::byte> bytes_;
  const std::string& source_;
  size_t position_ = 0;
};

GgufValue read_value(Cursor& cursor, GgufType type, const std::string& key,
                     const std::string& source, int depth) {
  switch (type) {
    case GgufType::U8:
      return {type, uint64_t{cursor.read<uint8_t>(key.c_str())}};
    case GgufType::I8:
      return {type, int64_t{cursor.read<int8_t>(key.c_str())}};
    case GgufType::U16:
      return {type, uint64_t{cursor.read<uint16_t>(key.c_str())}};
    case GgufType::I16:
      return {type, int64_t{cursor.read<int16_t>(key.c_str())}};
    case GgufType::U32:
      return {type, uint64_t{cursor.read<uint32_t>(key.c_str())}};
    case GgufType::I32:
      return {type, int64_t{cursor.read<int32_t>(key.c_str())}};
    case GgufType::F32:
      return {type, double{cursor.read<float>(key.c_str())}};
    case GgufType::BOOL: {
      uint8_t value = cursor.read<uint8_t>(key.c_str());
      check(value <= 1, "{}: key '{}': bool value {} is neither 0 nor 1", source, key, value);
      return {type, value == 1};
    }
    case GgufType::STRING:
      return {type, cursor.read_string(key.c_str())};
    case GgufType::U64:
      return {type, cursor.read<uint64_t>(key.c_str())};
    case GgufType::I64:
      return {type, cursor.read<int64_t>(key.c_str())};
    case GgufType::F64:
      return {type, cursor.read<double>(key.c_str())};
    case GgufType::ARRAY: {
      check(depth < kMaxArrayDepth, "{}: key '{}': arrays nested deeper than {}", source, key,
            kMaxArrayDepth);
      auto element = static_cast<GgufType>(cursor.read<uint32_t>(key.c_str()));
      check(static_cast<uint32_t>(element) <= static_cast<uint32_t>(GgufType::F64),
            "{}: key '{}': unknown array element type {}", source, key,
            static_cast<uint32_t>(element));
      uint64_t count = cursor.read<uint64_t>(key.c_str());
      // Every element takes at least one byte: a count past the end is corrupt, not a request
      // to allocate.
      check(count <= cursor.remaining(), "{}: key '{}': array of {} elements runs past the end",
            source, key, count);
      GgufArray array{element, {}};
      array.items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        array.items.push_back(read_value(cursor, element, key, source, depth + 1));
      }
      return {type, std::move(array)};
    }
  }
  fail("{}: key '{}': unknown value type {}", source, key, static_cast<uint32_t>(type));
}

}  // namespace

GgufFile GgufFile::open(const std::filesystem::path& path) {
  auto mapping = MappedFile::open(path);
  auto bytes = mapping->bytes();
  return parse(bytes, path.string(), std::move(mapping));
}

GgufFile GgufFile::parse(std::span<const std::byte> bytes, std::string source,
                         std::shared_ptr<const void> owner) {
  GgufFile file;
  file.source_ = std::move(source);
  file.file_size_ = bytes.size();
  const std::string& name = file.source_;
  Cursor cursor(bytes, name);
  check(bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0,
        "{}: not a GGUF file (bad magic)", name);
  cursor.read<uint32_t>("magic");
  file.version_ = cursor.read<uint32_t>("version");
  check(file.version_ == 2 || file.version_ == 3,
        "{}: GGUF version {} is not supported (2 and 3 are)", name, file.version_);
  uint64_t tensor_count = cursor.read<uint64_t>("tensor count");
  uint64_t kv_count = cursor.read<uint64_t>("metadata count");
  // A key-value pair takes at least 12 bytes, a tensor info at least 24.
  check(kv_count <= cursor.remaining() / 12, "{}: metadata count {} runs past the end", name,
        kv_count);
  check(tensor_count <= cursor.remaining() / 24, "{}: tensor count {} runs past the end", name,
        tensor_count);

  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = cursor.read_string("metadata key");
    auto type = static_cast<GgufType>(cursor.read<uint32_t>(key.c_str()));
    GgufValue value = read_value(cursor, type, key, name, 0);
    check(file.index_.emplace(key, file.metadata_.size()).second, "{}: key '{}' appears twice",
          name, key);
    file.metadata_.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* alignment = file.find("general.alignment")) {
    uint64_t value = alignment->as_uint("general.alignment");
    check(value > 0 && value <= (1u << 20) && (value & (value - 1)) == 0,
          "{}: general.alignment {} is not a power of two", name, value);
    file.alignment_ = value;
  }

  struct Info {
    std::string name;
    Shape shape;
    DType dtype;
    uint64_t offset, size;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    Info info;
    info.name = cursor.read_string("tensor name");
    uint32_t dimensions = cursor.read<uint32_t>(info.name.c_str());
    check(dimensions >= 1 && dimensions <= kMaxDimensions,
          "{}: tensor '{}' has {} dimensions (1 to 4 allowed)", name, info.name, dimensions);
    std::vector<uint64_t> extents(dimensions);
    uint64_t count = 1;
    for (auto& extent : extents) {
      extent = cursor.read<uint64_t>(info.name.c_str());
      check(extent <= (uint64_t{1} << 40) && (extent == 0 || count <= (uint64_t{1} << 50) / extent),
            "{}: tensor '{}' is too large", name, info.name);
      count *= extent;
    }
    uint32_t type = cursor.read<uint32_t>(info.name.c_str());
    auto dtype = dtype_of_ggml_type(type);
    check(dtype.has_value(), "{}: tensor '{}' has unsupported ggml type {}", name, info.name, type);
    info.dtype = *dtype;
    check(extents[0] % dtype_block_elements(info.dtype) == 0,
          "{}: tensor '{}': rows of {} elements are not whole {} blocks", name, info.name,
          extents[0], dtype_name(info.dtype));
    info.offset = cursor.read<uint64_t>(info.name.c_str());
    check(info.offset % file.alignment_ == 0, "{}: tensor '{}' offset {} is not aligned to {}",
          name, info.name, info.offset, file.alignment_);
    info.size = dtype_bytes(info.dtype, count);
    info.shape.assign(extents.rbegin(), extents.rend());
    infos.push_back(std::move(info));
  }

  const uint64_t data_start =
      (cursor.position() + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  check(data_start <= bytes.size() || infos.empty(), "{}: tensor data starts past the end", name);
  const uint64_t data_size = bytes.size() >= data_start ? bytes.size() - data_start : 0;
  std::vector<const Info*> by_offset;
  for (const auto& info : infos) {
    check(info.offset <= data_size && info.size <= data_size - info.offset,
          "{}: tensor '{}' data [{}, {}) runs past the end of the file", name, info.name,
          data_start + info.offset, data_start + info.offset + info.size);
    by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Info* a, const Info* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    check(by_offset[i - 1]->offset + by_offset[i - 1]->size <= by_offset[i]->offset,
          "{}: tensors '{}' and '{}' overlap", name, by_offset[i - 1]->name, by_offset[i]->name);
  }
  for (auto& info : infos) {
    HostTensor tensor;
    tensor.name = std::move(info.name);
    tensor.dtype = info.dtype;
    tensor.shape = std::move(info.shape);
    tensor.bytes = bytes.subspan(data_start + info.offset, info.size);
    tensor.owner = owner;
    file.tensors_.push_back(std::move(tensor));
  }
  return file;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &metadata_[it->second].second;
}

}  // namespace flow2
