// GGUF metadata values: typed access and construction, and the ggml tensor type ids.
#include "flow2/error.h"
#include "flow2/gguf.h"

namespace flow2 {
namespace {

const char* type_name(GgufType type) {
  switch (type) {
    case GgufType::U8:
      return "u8";
    case GgufType::I8:
      return "i8";
    case GgufType::U16:
      return "u16";
    case GgufType::I16:
      return "i16";
    case GgufType::U32:
      return "u32";
    case GgufType::I32:
      return "i32";
    case GgufType::F32:
      return "f32";
    case GgufType::BOOL:
      return "bool";
    case GgufType::STRING:
      return "string";
    case GgufType::ARRAY:
      return "array";
    case GgufType::U64:
      return "u64";
    case GgufType::I64:
      return "i64";
    case GgufType::F64:
      return "f64";
  }
  return "?";
}

// ggml_type ids (ggml.h) of the types flow2 reads and writes.
constexpr std::pair<uint32_t, DType> kGgmlTypes[] = {
    {0, DType::F32},   {1, DType::F16},   {2, DType::Q4_0},  {3, DType::Q4_1},  {8, DType::Q8_0},
    {12, DType::Q4_K}, {13, DType::Q5_K}, {14, DType::Q6_K}, {24, DType::I8},   {25, DType::I16},
    {26, DType::I32},  {27, DType::I64},  {28, DType::F64},  {30, DType::BF16},
};

}  // namespace

uint64_t GgufValue::as_uint(const std::string& key) const {
  if (auto* value = std::get_if<uint64_t>(&this->value)) return *value;
  if (auto* value = std::get_if<int64_t>(&this->value); value && *value >= 0) {
    return static_cast<uint64_t>(*value);
  }
  fail("GGUF key '{}' is {}, expected a non-negative integer", key, type_name(type));
}

int64_t GgufValue::as_int(const std::string& key) const {
  if (auto* value = std::get_if<int64_t>(&this->value)) return *value;
  if (auto* value = std::get_if<uint64_t>(&this->value);
      value && *value <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(*value);
  }
  fail("GGUF key '{}' is {}, expected an integer", key, type_name(type));
}

double GgufValue::as_float(const std::string& key) const {
  if (auto* value = std::get_if<double>(&this->value)) return *value;
  if (auto* value = std::get_if<uint64_t>(&this->value)) return static_cast<double>(*value);
  if (auto* value = std::get_if<int64_t>(&this->value)) return static_cast<double>(*value);
  fail("GGUF key '{}' is {}, expected a number", key, type_name(type));
}

bool GgufValue::as_bool(const std::string& key) const {
  if (auto* value = std::get_if<bool>(&this->value)) return *value;
  fail("GGUF key '{}' is {}, expected a bool", key, type_name(type));
}

const std::string& GgufValue::as_string(const std::string& key) const {
  if (auto* value = std::get_if<std::string>(&this->value)) return *value;
  fail("GGUF key '{}' is {}, expected a string", key, type_name(type));
}

const GgufArray& GgufValue::as_array(const std::string& key) const {
  if (auto* value = std::get_if<GgufArray>(&this->value)) return *value;
  fail("GGUF key '{}' is {}, expected an array", key, type_name(type));
}

GgufValue GgufValue::of_uint32(uint32_t value) {
  return {GgufType::U32, uint64_t{value}};
}
GgufValue GgufValue::of_float32(float value) {
  return {GgufType::F32, static_cast<double>(value)};
}
GgufValue GgufValue::of_bool(bool value) {
  return {GgufType::BOOL, value};
}
GgufValue GgufValue::of_string(std::string value) {
  return {GgufType::STRING, std::move(value)};
}
GgufValue GgufValue::of_array(GgufType element_type, std::vector<GgufValue> items) {
  return {GgufType::ARRAY, GgufArray{element_type, std::move(items)}};
}

std::optional<uint32_t> ggml_type_of(DType dtype) {
  for (const auto& [id, type] : kGgmlTypes) {
    if (type == dtype) return id;
  }
  return std::nullopt;
}

std::optional<DType> dtype_of_ggml_type(uint32_t type) {
  for (const auto& [id, dtype] : kGgmlTypes) {
    if (id == type) return dtype;
  }
  return std::nullopt;
}

}  // namespace flow2
