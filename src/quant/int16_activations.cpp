#include "quant/int16_activations.h"

#include <algorithm>
#include <cmath>

namespace flow2 {

void Int16Activations::quantize(const float* x, size_t rows, size_t count) {
  count_ = count;
  const size_t blocks = rows * count / 32;
  values_.resize(rows * count);
  scales_.resize(blocks);
  sums_.resize(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const float* source = x + b * 32;
    float largest = 0.0f;
    for (int j = 0; j < 32; ++j) largest = std::max(largest, std::fabs(source[j]));
    const float scale = largest / 32767.0f;
    const float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
    int16_t* target = values_.data() + b * 32;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      // Clamped: x * (1 / scale) may round a hair past 32767 at the largest element.
      const float code = std::clamp(std::nearbyint(source[j] * inverse), -32767.0f, 32767.0f);
      target[j] = static_cast<int16_t>(code);
      sum += target[j];
    }
    scales_[b] = scale;
    sums_[b] = scale * static_cast<float>(sum);
  }
}

Int16Row Int16Activations::row(size_t index) const {
  const size_t blocks = count_ / 32;
  return {values_.data() + index * count_, scales_.data() + index * blocks,
          sums_.data() + index * blocks};
}

}  // namespace flow2
