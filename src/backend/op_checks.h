// The shape checks every backend makes before an op, so that a mistake gets the same message on
// the CPU and on a GPU. Each returns what the op derives from the shapes.
#pragma once

#include <cstdint>
#include <span>

#include "flow2/backend.h"

namespace flow2 {

// out = x * weight^T (+ bias): x [M, K], weight [N, K], out [M, N], bias [N].
void check_matmul(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias);
// Each of shared_input_matmul's products as check_matmul, and spans of one length.
void check_shared_input_matmul(std::span<Tensor* const> outs, const Tensor& x,
                               std::span<const Tensor* const> weights,
                               std::span<const Tensor* const> biases);
// Rotates x [tokens, heads * head_dim] at `positions` with head_dim / 2 frequencies.
void check_rope(const Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
                std::span<const float> inv_freq);
// x [batch * n_tokens, width] into cache [batch * capacity, width] after n_past (or past[b])
// rows; returns the capacity per sequence.
int64_t check_kv_write(const Tensor& cache, const Tensor& x, int64_t batch, int64_t n_tokens,
                       int64_t n_past, std::span<const int64_t> past);
// Attention of q over the caches; returns the capacity per sequence.
int64_t check_attention(const Tensor& out, const Tensor& q, const Tensor& k_cache,
                        const Tensor& v_cache, const AttentionShape& shape);

}  // namespace flow2
