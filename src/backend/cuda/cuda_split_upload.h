// Block-quantized matrices to and from the split layout of the GPU (cuda_split_layout.h): which
// matrices take it, their device bytes, and the repacking of a checkpoint's blocks into it, row
// by row, as the weight upload's staging threads fill their buffers.
#pragma once

#include <cstdint>
#include <optional>

#include "backend/staged_upload.h"
#include "flow2/tensor.h"

namespace flow2::cuda {

// The dtype a matrix takes on the device in the split layout: Q8_0, Q4_0, Q4_1, Q4_K stay what
// they are (their values are the blocks' values), a Q4_1 matrix whose pairs of blocks share d
// and m becomes Q4_A64 (MLX group-64 checkpoints; reading it costs a scan of the block headers).
// nullopt for anything else: dense weights, vectors, Q5_K/Q6_K (the GPU keeps those as bf16).
std::optional<DType> split_weight_dtype(const HostTensor& host);

// Device bytes of `host` in the split layout as `dtype` (split_weight_dtype's answer). Rows are
// padded to 16 bytes and Q4_K carries float32 sub-block scales, so this is not
// dtype_bytes(dtype, numel): Tensor::nbytes() of such a tensor is its dtype's size.
uint64_t split_weight_bytes(const HostTensor& host, DType dtype);

// Fills bytes [offset, offset + size) of the split form of `host` as `dtype`; offsets and sizes
// are whole rows (granule: split_row_bytes).
StageFill split_fill(const HostTensor& host, DType dtype);

}  // namespace flow2::cuda
