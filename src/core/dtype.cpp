#include "flow2/dtype.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#ifdef __F16C__
#include <immintrin.h>
#endif
#include <limits>

#include "flow2/error.h"
#include "flow2/quant.h"

namespace flow2 {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;            // bytes per element, or per block
  size_t block_elements;  // 1 unless quantized
  bool floating;
};

constexpr std::array<DTypeInfo, 22> kDTypes = {{
    {DType::BOOL, "BOOL", 1, 1, false},
    {DType::U8, "U8", 1, 1, false},
    {DType::I8, "I8", 1, 1, false},
    {DType::F8_E4M3, "F8_E4M3", 1, 1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, 1, true},
    {DType::U16, "U16", 2, 1, false},
    {DType::I16, "I16", 2, 1, false},
    {DType::F16, "F16", 2, 1, true},
    {DType::BF16, "BF16", 2, 1, true},
    {DType::U32, "U32", 4, 1, false},
    {DType::I32, "I32", 4, 1, false},
    {DType::F32, "F32", 4, 1, true},
    {DType::U64, "U64", 8, 1, false},
    {DType::I64, "I64", 8, 1, false},
    {DType::F64, "F64", 8, 1, true},
    // ggml block layouts: Q4_0 = f16 scale + 16 bytes of nibbles; Q4_1 adds an f16 minimum;
    // Q8_0 = f16 scale + 32 int8; the K types are 256-element super-blocks.
    {DType::Q4_0, "Q4_0", 18, 32, true},
    {DType::Q4_1, "Q4_1", 20, 32, true},
    {DType::Q8_0, "Q8_0", 34, 32, true},
    {DType::Q4_K, "Q4_K", 144, 256, true},
    {DType::Q5_K, "Q5_K", 176, 256, true},
    {DType::Q6_K, "Q6_K", 210, 256, true},
    {DType::Q4_A64, "Q4_A64", 36, 64, true},
}};

const DTypeInfo& info(DType dtype) {
  return kDTypes[static_cast<size_t>(dtype)];
}

template <typename T>
T load(const void* base, size_t index) {
  T value;
  std::memcpy(&value, static_cast<const char*>(base) + index * sizeof(T), sizeof(T));
  return value;
}

}  // namespace

size_t dtype_size(DType dtype) {
  return info(dtype).size;
}
size_t dtype_block_elements(DType dtype) {
  return info(dtype).block_elements;
}
bool is_quantized(DType dtype) {
  return info(dtype).block_elements > 1;
}

uint64_t dtype_bytes(DType dtype, uint64_t count) {
  const DTypeInfo& entry = info(dtype);
  return count / entry.block_elements * entry.size;
}
std::string_view dtype_name(DType dtype) {
  return info(dtype).name;
}
bool is_floating(DType dtype) {
  return info(dtype).floating;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name && entry.block_elements == 1) return entry.dtype;
  }
  return std::nullopt;
}

float bf16_to_f32(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t f32_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t bits) {
#ifdef __F16C__
  return _cvtsh_ss(bits);  // one instruction where the CPU has F16C
#else
  uint32_t sign = (bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0x1f) {  // inf or NaN
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
#endif
}

uint16_t f32_to_f16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00;   // NaN
  if (magnitude >= 0x477ff000u) return sign | 0x7c00;  // rounds to infinity
  if (magnitude < 0x38800000u) {                       // subnormal or zero in f16
    // Scale so that one f16 subnormal step is 1.0, then round to nearest even.
    float scaled = std::bit_cast<float>(magnitude) * 16777216.0f;  // 2^24
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t rounding = 0xfff + ((magnitude >> 13) & 1);
  magnitude += rounding;
  return sign | static_cast<uint16_t>((magnitude - 0x38000000u) >> 13);
}

float f8_e4m3_to_f32(uint8_t bits) {
  // E4M3 "fn": bias 7, no infinities, S.1111.111 is NaN.
  float sign = (bits & 0x80) ? -1.0f : 1.0f;
  int exponent = (bits >> 3) & 0xf;
  int mantissa = bits & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);
  return sign * std::ldexp(1.0f + mantissa / 8.0f, exponent - 7);
}

float f8_e5m2_to_f32(uint8_t bits) {
  // E5M2 is IEEE-like: bias 15, with infinities and NaNs; the upper half of an f16.
  return f16_to_f32(static_cast<uint16_t>(bits) << 8);
}

void convert_to_f32(DType dtype, const void* source, size_t count, float* destination) {
  if (count == 0) return;  // an empty tensor may have no storage at all
  // The switch sits outside the loops so that each loop is a tight, vectorizable conversion.
  auto each = [&]<typename T>(T, auto&& to_float) {
    for (size_t i = 0; i < count; ++i) destination[i] = to_float(load<T>(source, i));
  };
  auto cast = [](auto value) { return static_cast<float>(value); };
  switch (dtype) {
    case DType::BOOL:
      each(uint8_t{}, [](uint8_t v) { return v ? 1.0f : 0.0f; });
      break;
    case DType::U8:
      each(uint8_t{}, cast);
      break;
    case DType::I8:
      each(int8_t{}, cast);
      break;
    case DType::F8_E4M3:
      each(uint8_t{}, f8_e4m3_to_f32);
      break;
    case DType::F8_E5M2:
      each(uint8_t{}, f8_e5m2_to_f32);
      break;
    case DType::U16:
      each(uint16_t{}, cast);
      break;
    case DType::I16:
      each(int16_t{}, cast);
      break;
    case DType::F16:
      each(uint16_t{}, f16_to_f32);
      break;
    case DType::BF16:
      each(uint16_t{}, bf16_to_f32);
      break;
    case DType::U32:
      each(uint32_t{}, cast);
      break;
    case DType::I32:
      each(int32_t{}, cast);
      break;
    case DType::F32:
      std::memcpy(destination, source, count * sizeof(float));
      break;
    case DType::U64:
      each(uint64_t{}, cast);
      break;
    case DType::I64:
      each(int64_t{}, cast);
      break;
    case DType::F64:
      each(double{}, cast);
      break;
    default:
      dequantize_blocks(dtype, source, count, destination);
      break;
  }
}

}  // namespace flow2
