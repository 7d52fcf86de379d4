// GGUF (versions 2 and 3): typed metadata, tensor infos and aligned tensor data in one file, as
// llama.cpp writes it. Reading validates every count, length, offset and type; writing is atomic.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "flow2/tensor.h"

namespace flow2 {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufType element_type = GgufType::U8;
  std::vector<GgufValue> items;
};

// One metadata value: its GGUF type and the value widened to one of six representations.
struct GgufValue {
  GgufType type = GgufType::U32;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;

  // Typed reads; a value of another type is an error naming `key`.
  uint64_t as_uint(const std::string& key) const;
  int64_t as_int(const std::string& key) const;
  double as_float(const std::string& key) const;
  bool as_bool(const std::string& key) const;
  const std::string& as_string(const std::string& key) const;
  const GgufArray& as_array(const std::string& key) const;

  static GgufValue of_uint32(uint32_t value);
  static GgufValue of_float32(float value);
  static GgufValue of_bool(bool value);
  static GgufValue of_string(std::string value);
  static GgufValue of_array(GgufType element_type, std::vector<GgufValue> items);
};

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

class GgufFile {
 public:
  static GgufFile open(const std::filesystem::path& path);
  static GgufFile parse(std::span<const std::byte> bytes, std::string source,
                        std::shared_ptr<const void> owner = nullptr);

  const std::string& source() const { return source_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  uint64_t file_size() const { return file_size_; }
  // Metadata in file order.
  const GgufMetadata& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;
  // Tensors in file order; shapes are row-major (GGUF's ne[0], the contiguous dimension, last).
  const std::vector<HostTensor>& tensors() const { return tensors_; }

 private:
  std::string source_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  uint64_t file_size_ = 0;
  GgufMetadata metadata_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<HostTensor> tensors_;
};

// Writes a GGUF v3 file atomically: the metadata in the order given, then the tensors, each
// aligned to `alignment` (general.alignment is added when it is not 32).
void write_gguf(const std::filesystem::path& path, const GgufMetadata& metadata,
                std::span<const HostTensor> tensors, size_t alignment = 32);

// The ggml type id of a dtype and back (nullopt for types GGUF files cannot hold here).
std::optional<uint32_t> ggml_type_of(DType dtype);
std::optional<DType> dtype_of_ggml_type(uint32_t type);

}  // namespace flow2
