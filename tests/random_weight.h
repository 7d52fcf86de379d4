// Random weights as checkpoints hold them, and how far a product of quantized weights may be
// from the exact one (tests of the GEMV paths).
#pragma once

#include <cstdint>
#include <vector>

#include "flow2/tensor.h"

namespace flow2::testing {

// A weight [n, k] of random values (scale 0.5) in `dtype`. Q4_A64 is MLX's form: Q4_1 blocks
// whose pairs share d and m (the CUDA backend keeps those once per 64).
HostTensor random_weight(DType dtype, int64_t n, int64_t k, uint64_t seed);

// How far a product of 1-4 rows of x [m, k] and w [n, k] may be from the exact one on either
// backend, as test_backend_quantized bounds it: the CPU rounds x to int16 per block of 32 (half
// a step of the block's largest |x|), and float32 sums differ by their order.
double product_bound(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n,
                     int64_t k);

}  // namespace flow2::testing
