#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "flow2/error.h"
#include "flow2/mapped_file.h"
#include "flow2/safetensors.h"

namespace flow2 {
namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

uint64_t read_u64_le(const std::byte* data) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(data[i]);
  return value;
}

json parse_header_json(std::string_view text, const std::string& source) {
  // Duplicate top-level names would silently shadow each other in the JSON object.
  std::unordered_set<std::string> seen;
  std::string duplicate;
  auto detect_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), detect_duplicates);
  } catch (const json::exception& error) {
    fail("{}: header is not valid JSON: {}", source, error.what());
  }
  check(duplicate.empty(), "{}: tensor '{}' appears twice in the header", source, duplicate);
  check(header.is_object(), "{}: header is not a JSON object", source);
  return header;
}

uint64_t non_negative_integer(const json& value, const std::string& source, const std::string& name,
                              const char* field) {
  check(value.is_number_unsigned(), "{}: tensor '{}': {} must hold non-negative integers", source,
        name, field);
  return value.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const json& info, const std::string& source) {
  check(info.is_object(), "{}: tensor '{}': header entry is not an object", source, name);
  auto dtype_it = info.find("dtype");
  check(dtype_it != info.end() && dtype_it->is_string(), "{}: tensor '{}': missing 'dtype'", source,
        name);
  auto dtype = dtype_from_name(dtype_it->get<std::string>());
  check(dtype.has_value(), "{}: tensor '{}': unknown dtype '{}'", source, name,
        dtype_it->get<std::string>());

  auto shape_it = info.find("shape");
  check(shape_it != info.end() && shape_it->is_array(), "{}: tensor '{}': missing 'shape'", source,
        name);
  Shape shape;
  uint64_t byte_count = dtype_size(*dtype);
  bool overflow = false;
  for (const auto& extent : *shape_it) {
    uint64_t value = non_negative_integer(extent, source, name, "shape");
    check(value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
          "{}: tensor '{}': shape extent {} is too large", source, name, value);
    if (value != 0 && byte_count > std::numeric_limits<uint64_t>::max() / value) overflow = true;
    byte_count *= value;
    shape.push_back(static_cast<int64_t>(value));
  }
  check(!overflow, "{}: tensor '{}': shape {} is too large", source, name, shape_string(shape));

  auto offsets_it = info.find("data_offsets");
  check(offsets_it != info.end() && offsets_it->is_array() && offsets_it->size() == 2,
        "{}: tensor '{}': 'data_offsets' must be [begin, end]", source, name);
  uint64_t begin = non_negative_integer((*offsets_it)[0], source, name, "data_offsets");
  uint64_t end = non_negative_integer((*offsets_it)[1], source, name, "data_offsets");
  check(begin <= end, "{}: tensor '{}': data_offsets [{}, {}] end before they begin", source, name,
        begin, end);
  check(end - begin == byte_count,
        "{}: tensor '{}': {} {} needs {} bytes but data_offsets [{}, {}] hold {}", source, name,
        dtype_name(*dtype), shape_string(shape), byte_count, begin, end, end - begin);
  return Entry{name, *dtype, std::move(shape), begin, end};
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& source) {
  check(value.is_object(), "{}: '__metadata__' must be an object of strings", source);
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    check(item.is_string(), "{}: '__metadata__' value for '{}' is not a string", source, key);
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// The spec demands that the byte buffer be covered exactly: no gaps, no overlaps.
void check_layout(std::vector<Entry>& entries, uint64_t buffer_size, const std::string& source) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  const Entry* previous = nullptr;
  for (const auto& entry : entries) {
    check(entry.end <= buffer_size,
          "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data ({} bytes)", source,
          entry.name, entry.begin, entry.end, buffer_size);
    if (entry.begin < expected_begin) {
      fail("{}: tensor '{}' (bytes {}..{}) overlaps tensor '{}' (bytes {}..{})", source, entry.name,
           entry.begin, entry.end, previous->name, previous->begin, previous->end);
    }
    check(entry.begin == expected_begin,
          "{}: bytes {}..{} of the data belong to no tensor (gap before '{}')", source,
          expected_begin, entry.begin, entry.name);
    expected_begin = entry.end;
    previous = &entry;
  }
  check(expected_begin == buffer_size,
        "{}: the last {} bytes of the data belong to no tensor (data is {} bytes, tensors end at "
        "{})",
        source, buffer_size - expected_begin, buffer_size, expected_begin);
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto mapping = MappedFile::open(path);
  auto bytes = mapping->bytes();
  return parse(bytes, path.string(), std::move(mapping));
}

SafetensorsFile SafetensorsFile::parse(std::span<const std::byte> bytes, std::string source,
                                       std::shared_ptr<const void> owner) {
  check(bytes.size() >= 8, "{}: file is {} bytes, too short for a safetensors header", source,
        bytes.size());
  uint64_t header_size = read_u64_le(bytes.data());
  check(header_size <= bytes.size() - 8,
        "{}: header length {} runs past the end of the file ({} bytes)", source, header_size,
        bytes.size());
  check(header_size <= kMaxHeaderBytes, "{}: header length {} exceeds the limit of {} bytes",
        source, header_size, kMaxHeaderBytes);
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
  check(!text.empty() && text.front() == '{', "{}: header does not start with '{{'", source);
  json header = parse_header_json(text, source);

  SafetensorsFile file;
  file.source_ = std::move(source);
  file.file_size_ = bytes.size();
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      file.metadata_ = parse_metadata(info, file.source_);
    } else {
      entries.push_back(parse_entry(name, info, file.source_));
    }
  }
  auto data = bytes.subspan(8 + header_size);
  check_layout(entries, data.size(), file.source_);

  file.tensors_.reserve(entries.size());
  for (auto& entry : entries) {
    HostTensor tensor;
    tensor.name = entry.name;
    tensor.dtype = entry.dtype;
    tensor.shape = std::move(entry.shape);
    tensor.bytes = data.subspan(entry.begin, entry.end - entry.begin);
    tensor.owner = owner;
    file.index_[tensor.name] = file.tensors_.size();
    file.tensors_.push_back(std::move(tensor));
  }
  return file;
}

const HostTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const HostTensor& SafetensorsFile::get(const std::string& name) const {
  const HostTensor* tensor = find(name);
  check(tensor != nullptr, "{}: no tensor named '{}'", source_, name);
  return *tensor;
}

}  // namespace flow2
