// Decoding of the ggml block formats, written from the format definitions:
//   Q8_0 (32): f16 d, int8 q[32]                          x = d * q
//   Q4_0 (32): f16 d, u8 q[16]                            x = d * (nibble - 8)
//   Q4_1 (32): f16 d, f16 m, u8 q[16]                     x = d * nibble + m
//     (element j < 16 is the low nibble of q[j], element j + 16 its high nibble)
//   Q4_K (256): f16 d, f16 dmin, u8 scales[12], u8 q[128]
//     8 sub-blocks of 32 with 6-bit scale sc and minimum mn: x = d * sc * nibble - dmin * mn;
//     each 32 bytes of q hold two sub-blocks (low nibbles first)
//   Q5_K (256): as Q4_K plus u8 qh[32] holding each element's fifth bit
//   Q6_K (256): u8 ql[128], u8 qh[64], int8 scales[16], f16 d
//     16 sub-blocks of 16 with 8-bit scales: x = d * scale * (q - 32), q 6 bits
// and flow2's Q4_A64 (MLX's affine 4-bit groups, dtype.h):
//   Q4_A64 (64): f16 d, f16 m, u8 q[32]                   x = d * nibble + m
//     (element j is the low nibble of q[j / 2] for even j, the high nibble for odd j)
#include <cmath>
#include <cstring>

#include "flow2/error.h"
#include "flow2/quant.h"
#include "quant/k_scales.h"

namespace flow2 {
namespace {

float half(const uint8_t* bytes) {
  uint16_t bits;
  std::memcpy(&bits, bytes, 2);
  return f16_to_f32(bits);
}

void decode_q8_0(const uint8_t* block, float* out) {
  const float d = half(block);
  const auto* q = reinterpret_cast<const int8_t*>(block + 2);
  for (int j = 0; j < 32; ++j) out[j] = d * q[j];
}

void decode_q4_0(const uint8_t* block, float* out) {
  const float d = half(block);
  const uint8_t* q = block + 2;
  for (int j = 0; j < 16; ++j) {
    out[j] = d * ((q[j] & 0x0f) - 8);
    out[j + 16] = d * ((q[j] >> 4) - 8);
  }
}

void decode_q4_1(const uint8_t* block, float* out) {
  const float d = half(block), m = half(block + 2);
  const uint8_t* q = block + 4;
  for (int j = 0; j < 16; ++j) {
    out[j] = d * (q[j] & 0x0f) + m;
    out[j + 16] = d * (q[j] >> 4) + m;
  }
}

void decode_q4_a64(const uint8_t* block, float* out) {
  const float d = half(block), m = half(block + 2);
  const uint8_t* q = block + 4;
  for (int j = 0; j < 32; ++j) {
    out[2 * j] = d * (q[j] & 0x0f) + m;
    out[2 * j + 1] = d * (q[j] >> 4) + m;
  }
}

void decode_q4_k(const uint8_t* block, float* out) {
  const float d = half(block), dmin = half(block + 2);
  const uint8_t* scales = block + 4;
  const uint8_t* q = block + 16;
  for (int pair = 0; pair < 4; ++pair) {  // 64 elements: two sub-blocks share 32 bytes
    int scale_low, min_low, scale_high, min_high;
    k_scale_and_min(2 * pair, scales, &scale_low, &min_low);
    k_scale_and_min(2 * pair + 1, scales, &scale_high, &min_high);
    for (int l = 0; l < 32; ++l) {
      out[l] = d * scale_low * (q[l] & 0x0f) - dmin * min_low;
      out[l + 32] = d * scale_high * (q[l] >> 4) - dmin * min_high;
    }
    q += 32;
    out += 64;
  }
}

void decode_q5_k(const uint8_t* block, float* out) {
  const float d = half(block), dmin = half(block + 2);
  const uint8_t* scales = block + 4;
  const uint8_t* high_bits = block + 16;
  const uint8_t* q = block + 48;
  for (int pair = 0; pair < 4; ++pair) {
    int scale_low, min_low, scale_high, min_high;
    k_scale_and_min(2 * pair, scales, &scale_low, &min_low);
    k_scale_and_min(2 * pair + 1, scales, &scale_high, &min_high);
    // Sub-block 2*pair takes its fifth bit from bit 2*pair of qh[l], the next from bit 2*pair+1.
    const int low_bit = 1 << (2 * pair), high_bit = 1 << (2 * pair + 1);
    for (int l = 0; l < 32; ++l) {
      int low = (q[l] & 0x0f) + ((high_bits[l] & low_bit) ? 16 : 0);
      int high = (q[l] >> 4) + ((high_bits[l] & high_bit) ? 16 : 0);
      out[l] = d * scale_low * low - dmin * min_low;
      out[l + 32] = d * scale_high * high - dmin * min_high;
    }
    q += 32;
    out += 64;
  }
}

void decode_q6_k(const uint8_t* block, float* out) {
  const uint8_t* low = block;         // 128 bytes: low 4 bits
  const uint8_t* high = block + 128;  // 64 bytes: high 2 bits
  const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
  const float d = half(block + 208);
  for (int half_block = 0; half_block < 2; ++half_block) {  // 128 elements each
    for (int l = 0; l < 32; ++l) {
      const int sub = l / 16;
      const int q1 = ((low[l] & 0x0f) | (((high[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((low[l + 32] & 0x0f) | (((high[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((low[l] >> 4) | (((high[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((low[l + 32] >> 4) | (((high[l] >> 6) & 3) << 4)) - 32;
      out[l] = d * scales[sub] * q1;
      out[l + 32] = d * scales[sub + 2] * q2;
      out[l + 64] = d * scales[sub + 4] * q3;
      out[l + 96] = d * scales[sub + 6] * q4;
    }
    out += 128;
    low += 64;
    high += 32;
    scales += 8;
  }
}

using BlockDecoder = void (*)(const uint8_t*, float*);

BlockDecoder decoder_for(DType dtype) {
  switch (dtype) {
    case DType::Q8_0:
      return decode_q8_0;
    case DType::Q4_0:
      return decode_q4_0;
    case DType::Q4_1:
      return decode_q4_1;
    case DType::Q4_K:
      return decode_q4_k;
    case DType::Q5_K:
      return decode_q5_k;
    case DType::Q6_K:
      return decode_q6_k;
    case DType::Q4_A64:
      return decode_q4_a64;
    default:
      fail("{} is not a block-quantized type", dtype_name(dtype));
  }
}

}  // namespace

void dequantize_blocks(DType dtype, const void* blocks, size_t count, float* destination) {
  const size_t block_elements = dtype_block_elements(dtype);
  const size_t block_bytes = dtype_size(dtype);
  check(count % block_elements == 0, "{}: {} elements are not whole blocks of {}",
        dtype_name(dtype), count, block_elements);
  BlockDecoder decode = decoder_for(dtype);
  const auto* bytes = static_cast<const uint8_t*>(blocks);
  for (size_t b = 0; b < count / block_elements; ++b) {
    decode(bytes + b * block_bytes, destination + b * block_elements);
  }
}

}  // namespace flow2
