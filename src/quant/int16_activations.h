// Activations quantized to int16 blocks of 32, the other operand of the integer dot products:
// x[j] ~ scale * value[j] per block, with scale * sum(values) kept for the weight formats whose
// blocks carry a minimum. 16 bits keep the product as accurate as float32 arithmetic (a block's
// rounding error is 1/65534 of its largest magnitude) where 8-bit activations, as llama.cpp
// uses, shift logits by several hundredths and flip greedy choices between near-equal tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flow2 {

struct Int16Row {
  const int16_t* values;  // count elements
  const float* scales;    // count / 32 blocks
  const float* sums;      // scale * sum of the block's values
};

class Int16Activations {
 public:
  // Quantizes `rows` rows of `count` floats (count a multiple of 32), each block to the
  // symmetric range [-32767, 32767] of its largest magnitude.
  void quantize(const float* x, size_t rows, size_t count);
  Int16Row row(size_t index) const;

 private:
  size_t count_ = 0;
  std::vector<int16_t> values_;
  std::vector<float> scales_;
  std::vector<float> sums_;
};

}  // namespace flow2
