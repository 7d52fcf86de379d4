// Element types of tensors as the safetensors specification names them, and conversions of the
// floating-point ones to and from float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace flow2 {

enum class DType : uint8_t {
  BOOL,
  U8,
  I8,
  F8_E4M3,
  F8_E5M2,
  U16,
  I16,
  F16,
  BF16,
  U32,
  I32,
  F32,
  U64,
  I64,
  F64,
};

// Bytes per element.
size_t dtype_size(DType dtype);
// The safetensors name ("F32", "BF16", ...).
std::string_view dtype_name(DType dtype);
// Parses a safetensors name; nullopt for an unknown one.
std::optional<DType> dtype_from_name(std::string_view name);
bool is_floating(DType dtype);

float bf16_to_f32(uint16_t bits);
// Round to nearest even, as torch does; NaN stays NaN.
uint16_t f32_to_bf16(float value);
float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
float f8_e4m3_to_f32(uint8_t bits);
float f8_e5m2_to_f32(uint8_t bits);

// Converts `count` elements of any dtype to float32 (integers and booleans by value).
void convert_to_f32(DType dtype, const void* source, size_t count, float* destination);

}  // namespace flow2
