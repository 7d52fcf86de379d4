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
  // GGUF block-quantized types (ggml layouts): each block of 32 or 256 elements is stored as
  // scales and packed integers.
  Q4_0,
  Q4_1,
  Q8_0,
  Q4_K,
  Q5_K,
  Q6_K,
  // 4-bit affine groups of 64 (MLX's 4-bit layout with f16 scales and biases): a block is f16
  // scale, f16 bias, 32 bytes of codes (element j in byte j / 2, low nibble first), and
  // x = scale * q + bias. No file holds it: the CUDA backend keeps Q4_1 matrices whose pairs of
  // blocks share d and m (what MLX group-64 checkpoints load as) in this form.
  Q4_A64,
};

// Bytes per element of an unquantized type (for a quantized type: bytes per block).
size_t dtype_size(DType dtype);
// Elements per block: 1, or 32 / 256 for quantized types.
size_t dtype_block_elements(DType dtype);
bool is_quantized(DType dtype);
// Bytes that `count` elements take; `count` must be a whole number of blocks.
uint64_t dtype_bytes(DType dtype, uint64_t count);
// The name ("F32", "BF16", "Q4_K", ...).
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype name (quantized types are not safetensors dtypes); nullopt for an
// unknown one.
std::optional<DType> dtype_from_name(std::string_view name);
// Floating point, including quantized weights (which decode to floats).
bool is_floating(DType dtype);

float bf16_to_f32(uint16_t bits);
// Round to nearest even, as torch does; NaN stays NaN.
uint16_t f32_to_bf16(float value);
float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
float f8_e4m3_to_f32(uint8_t bits);
float f8_e5m2_to_f32(uint8_t bits);

// Converts `count` elements of any dtype to float32 (integers and booleans by value; quantized
// types are decoded, `count` a whole number of blocks).
void convert_to_f32(DType dtype, const void* source, size_t count, float* destination);

}  // namespace flow2
