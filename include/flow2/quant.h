// Block quantization in the ggml layouts that GGUF files use (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K,
// Q6_K): decoding to float32, encoding, and dot products that read the blocks directly.
#pragma once

#include <cstddef>
#include <cstdint>

#include "flow2/dtype.h"

namespace flow2 {

// Decodes `count` elements (a whole number of blocks) of a quantized `dtype`.
void dequantize_blocks(DType dtype, const void* blocks, size_t count, float* destination);

// Encodes `count` floats (a whole number of blocks) as Q8_0, Q4_0 or Q4_1, choosing each block's
// scale (and minimum) from its largest magnitude (range), as ggml's reference quantizers do, or
// as Q4_K, Q5_K or Q6_K (blocks of 256), whose sub-block scales cover each sub-block's range so
// that every element is within half of its effective step (ggml_quantize.cpp derives the bound).
void quantize_blocks(DType dtype, const float* source, size_t count, void* blocks);

}  // namespace flow2
