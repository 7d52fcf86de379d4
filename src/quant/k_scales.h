// The packed 6-bit sub-block scales and minimums of the Q4_K / Q5_K super-blocks, shared by the
// decoder and the integer dot products.
#pragma once

#include <cstdint>

namespace flow2 {

// The 6-bit scale and minimum of sub-block `j` (0..7) from the 12 packed bytes of a K block:
// sub-blocks 0-3 use the low 6 bits of bytes j and j + 4; sub-blocks 4-7 take their low 4 bits
// from byte j + 4 and their top 2 bits from the spare top bits of bytes j - 4 and j.
inline void k_scale_and_min(int j, const uint8_t* scales, int* scale, int* minimum) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *minimum = scales[j + 4] & 63;
  } else {
    *scale = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
    *minimum = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

}  // namespace flow2
