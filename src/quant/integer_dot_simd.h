// The x86 SIMD integer dot products, compiled when the build targets AVX2 (with AVX-512 VNNI's
// dpbusd where the target has it). FLOW2_SIMD_INTEGER_DOT names the kernel when present.
#pragma once

#include <cstddef>

#include "flow2/dtype.h"
#include "quant/int16_activations.h"

#if defined(__AVX2__) && defined(__FMA__)
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define FLOW2_SIMD_INTEGER_DOT "avx512-vnni"
#else
#define FLOW2_SIMD_INTEGER_DOT "avx2"
#endif

namespace flow2 {
float integer_row_dot_simd(DType dtype, const void* row, const Int16Row& x, size_t count);
}  // namespace flow2

#endif
