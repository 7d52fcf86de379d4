// What the dense and split-layout GEMVs share: several matrices in one launch (cuda_kernels.h's
// GemvSegments), whose rows the blocks of the grid take in turn, so that q, k and v of a decoding
// step are one kernel with one drain instead of three (one matrix is the one-segment case of the
// same kernels); and the dispatch on the rows of x.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "backend/cuda/cuda_kernels.h"

namespace flow2::cuda {

// The kernels' form of GemvSegments (a __grid_constant__ parameter): segment s takes blocks
// first_block[s] .. first_block[s + 1] - 1.
struct BlockSegments {
  GemvSegment segment[kGemvMaxSegments];
  unsigned first_block[kGemvMaxSegments];  // UINT_MAX past the last segment: never reached
  unsigned blocks;                         // the grid
};

// Blocks of `rows_per_block` rows for each segment's n rows, in order.
inline BlockSegments assign_blocks(const GemvSegments& segments, int64_t rows_per_block) {
  BlockSegments table{};
  for (int s = 0; s < kGemvMaxSegments; ++s) {
    table.first_block[s] = UINT_MAX;
    if (s < segments.count) {
      table.segment[s] = segments.segment[s];
      table.first_block[s] = table.blocks;
      table.blocks +=
          static_cast<unsigned>((segments.segment[s].n + rows_per_block - 1) / rows_per_block);
    }
  }
  return table;
}

// Rows of all segments.
inline int64_t total_rows(const GemvSegments& segments) {
  int64_t rows = 0;
  for (int s = 0; s < segments.count; ++s) rows += segments.segment[s].n;
  return rows;
}

// The index of this block's segment, and in `block` the block's index within it, for a table of
// up to S segments. The kernels take the table as a __grid_constant__ parameter and read a field
// where they need it (values selected at the start would stay in registers through the rows).
// S = 1 (a single matrix) leaves no lookup: the fields are read at fixed offsets, as plain
// parameters, so a single matmul runs as it did before segments.
template <int S>
__device__ inline int block_segment(const BlockSegments& table, int64_t& block) {
  int index = 0;
  unsigned first = 0;
#pragma unroll
  for (int s = 1; s < S; ++s) {
    if (blockIdx.x >= table.first_block[s]) {
      index = s;
      first = table.first_block[s];
    }
  }
  block = static_cast<int64_t>(blockIdx.x - first);
  return index;
}

// Calls f with std::integral_constant<int, V> for the first V of kValues that equals `value`,
// or for the last one: a runtime count as a kernel's template argument.
template <int kFirst, int... kRest, typename F>
void with_constant(int64_t value, F&& f) {
  if constexpr (sizeof...(kRest) == 0) {
    f(std::integral_constant<int, kFirst>{});
  } else if (value == kFirst) {
    f(std::integral_constant<int, kFirst>{});
  } else {
    with_constant<kRest...>(value, std::forward<F>(f));
  }
}

// Calls f with std::integral_constant<int, S>, the kernels' S: 1 for one segment, else
// kGemvMaxSegments.
template <typename F>
void with_segments(const GemvSegments& segments, F&& f) {
  with_constant<1, kGemvMaxSegments>(segments.count, std::forward<F>(f));
}

// Calls f with std::integral_constant<int, M> for m (1 to kGemvMaxRows) rows of x.
template <typename F>
void with_rows(int64_t m, F&& f) {
  static_assert(kGemvMaxRows == 4, "the rows listed below");
  with_constant<1, 2, 3, 4>(m, std::forward<F>(f));
}

}  // namespace flow2::cuda
