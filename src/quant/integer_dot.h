// Dot products of one row of packed weight blocks (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) with a
// row of int16 activations, summing integer products per block and scaling once per block.
// This is how decoding a token reads quantized weights: they never widen to float in memory.
#pragma once

#include <cstddef>

#include "flow2/dtype.h"
#include "quant/int16_activations.h"

namespace flow2 {

bool has_integer_dot(DType dtype);

// The fastest kernel of this build (AVX-512 VNNI or AVX2 where compiled for, else portable).
float integer_row_dot(DType dtype, const void* row, const Int16Row& x, size_t count);

// Plain C++ for every CPU; the reference the SIMD kernels are tested against.
float integer_row_dot_portable(DType dtype, const void* row, const Int16Row& x, size_t count);

// "avx512-vnni", "avx2" or "portable".
const char* integer_dot_kernel();

}  // namespace flow2
