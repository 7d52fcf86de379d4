// Slow, obviously-correct reference implementations of the backend ops, in double precision,
// on plain row-major vectors. Backend ops are tested against these.
#pragma once

#include <cstdint>
#include <vector>

#include "flow2/backend.h"

namespace flow2::reference {

using Matrix = std::vector<float>;

// x [m, k] times w [n, k] transposed, plus bias [n] when non-empty.
Matrix matmul(const Matrix& x, const Matrix& w, const Matrix& bias, int64_t m, int64_t k,
              int64_t n);
Matrix rms_norm(const Matrix& x, const Matrix& weight, int64_t width, double eps);
Matrix layer_norm(const Matrix& x, const Matrix& weight, const Matrix& bias, int64_t width,
                  double eps);
// Rotates pairs (i, i + head_dim/2) of each head by positions[row] * inv_freq[i].
Matrix rope(const Matrix& x, int64_t head_dim, const std::vector<int32_t>& positions,
            const std::vector<float>& inv_freq);
// Full-matrix attention with an explicit mask: q [batch * n_tokens, heads * dim];
// keys/values [batch * (n_past + n_tokens), kv_heads * dim] (exactly the used rows).
Matrix attention(const Matrix& q, const Matrix& keys, const Matrix& values,
                 const AttentionShape& shape);
double activation(double x, Activation activation);

}  // namespace flow2::reference
