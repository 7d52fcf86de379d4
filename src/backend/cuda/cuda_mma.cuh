// Tensor-core helpers shared by kernels that issue mma.sync m16n8k16 (bf16 in, float32
// accumulate): the fragment layouts are those of the PTX ISA ("Matrix Fragments for
// mma.m16n8k16"): with g = lane / 4 and t = lane % 4, A holds rows g and g + 8 at columns
// 2t, 2t + 1 and 2t + 8, 2t + 9; B holds column g at rows 2t, 2t + 1 and 2t + 8, 2t + 9; C holds
// rows g and g + 8 at columns 2t and 2t + 1.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace flow2::cuda {

// d += a * b for one 16x8x16 tile.
__device__ inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as one register of bf16 pairs, the first in the low half.
__device__ inline uint32_t pack_bf16(float low, float high) {
  __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<uint32_t*>(&pair);
}

// Four 8x8 bf16 matrices from shared memory (ldmatrix): lanes 8i..8i+7 give the addresses of
// matrix i's rows (16 bytes each), and register i of lane l receives matrix i's row l / 4,
// elements 2 (l % 4) and 2 (l % 4) + 1 — a B fragment half of rows stored as B's columns.
__device__ inline void load_matrices(uint32_t (&r)[4], const __nv_bfloat16* row) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// The same, transposed: register i of lane l receives column l / 4 of matrix i at rows
// 2 (l % 4) and 2 (l % 4) + 1 — a B fragment half of rows stored as B's rows.
__device__ inline void load_matrices_transposed(uint32_t (&r)[4], const __nv_bfloat16* row) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

}  // namespace flow2::cuda
