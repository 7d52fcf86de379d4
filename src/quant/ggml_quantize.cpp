// Encoding into the 32-element ggml block formats, with the rounding of ggml's reference
// quantizers so that files flow2 writes decode as llama.cpp expects.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "flow2/error.h"
#include "flow2/quant.h"

namespace flow2 {
namespace {

void store_half(uint8_t* bytes, float value) {
  uint16_t bits = f32_to_f16(value);
  std::memcpy(bytes, &bits, 2);
}

// Q8_0: d = max|x| / 127, q = round(x / d).
void encode_q8_0(const float* x, uint8_t* block) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::abs(x[j]));
  const float d = amax / 127.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(block, d);
  auto* q = reinterpret_cast<int8_t*>(block + 2);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(std::lround(x[j] * inverse));
}

// Q4_0: the value of largest magnitude maps to -8, d = that value / -8.
void encode_q4_0(const float* x, uint8_t* block) {
  float amax = 0.0f, extreme = 0.0f;
  for (int j = 0; j < 32; ++j) {
    if (std::abs(x[j]) > amax) amax = std::abs(x[j]), extreme = x[j];
  }
  const float d = extreme / -8.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(block, d);
  uint8_t* q = block + 2;
  for (int j = 0; j < 16; ++j) {
    auto nibble = [&](float value) {
      return static_cast<uint8_t>(std::min(15, static_cast<int>(value * inverse + 8.5f)));
    };
    q[j] = nibble(x[j]) | static_cast<uint8_t>(nibble(x[j + 16]) << 4);
  }
}

// Q4_1: minimum m and step d = (max - min) / 15.
void encode_q4_1(const float* x, uint8_t* block) {
  float low = x[0], high = x[0];
  for (int j = 1; j < 32; ++j) low = std::min(low, x[j]), high = std::max(high, x[j]);
  const float d = (high - low) / 15.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  store_half(block, d);
  store_half(block + 2, low);
  uint8_t* q = block + 4;
  for (int j = 0; j < 16; ++j) {
    auto nibble = [&](float value) {
      return static_cast<uint8_t>(std::min(15, static_cast<int>((value - low) * inverse + 0.5f)));
    };
    q[j] = nibble(x[j]) | static_cast<uint8_t>(nibble(x[j + 16]) << 4);
  }
}

}  // namespace

void quantize_blocks(DType dtype, const float* source, size_t count, void* blocks) {
  check(count % 32 == 0, "{}: {} elements are not whole blocks of 32", dtype_name(dtype), count);
  void (*encode)(const float*, uint8_t*) = nullptr;
  switch (dtype) {
    case DType::Q8_0:
      encode = encode_q8_0;
      break;
    case DType::Q4_0:
      encode = encode_q4_0;
      break;
    case DType::Q4_1:
      encode = encode_q4_1;
      break;
    default:
      fail("quantizing to {} is not supported (Q8_0, Q4_0, Q4_1)", dtype_name(dtype));
  }
  auto* bytes = static_cast<uint8_t*>(blocks);
  for (size_t b = 0; b < count / 32; ++b) encode(source + b * 32, bytes + b * dtype_size(dtype));
}

}  // namespace flow2
