#include "model/rope_frequencies.h"

#include <cmath>
#include <numbers>

namespace flow2 {

std::vector<float> rope_inverse_frequencies(const RopeConfig& rope, int64_t head_dim,
                                            int64_t max_position_embeddings,
                                            int64_t sequence_length) {
  const int64_t half = head_dim / 2;
  double base = rope.theta;
  if (rope.type == RopeType::Dynamic) {
    // transformers' dynamic NTK: grow the base with the sequence beyond the trained length.
    double trained = static_cast<double>(rope.original_max_position_embeddings > 0
                                             ? rope.original_max_position_embeddings
                                             : max_position_embeddings);
    double length = std::max(static_cast<double>(sequence_length), trained);
    double dim = static_cast<double>(head_dim);
    base *= std::pow(rope.factor * length / trained - (rope.factor - 1.0), dim / (dim - 2.0));
  }
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // transformers computes base ** (2i / dim) in float32; the exponent is exact there too.
    float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / static_cast<float>(std::pow(base, static_cast<double>(exponent)));
  }
  if (!rope.frequency_factors.empty()) {
    for (size_t i = 0; i < inv_freq.size() && i < rope.frequency_factors.size(); ++i) {
      inv_freq[i] /= rope.frequency_factors[i];
    }
  }
  if (rope.type == RopeType::Linear) {
    for (auto& f : inv_freq) f = static_cast<float>(f / rope.factor);
  } else if (rope.type == RopeType::Llama3) {
    const double original = static_cast<double>(rope.original_max_position_embeddings);
    const double low_freq_wavelen = original / rope.low_freq_factor;
    const double high_freq_wavelen = original / rope.high_freq_factor;
    for (auto& f : inv_freq) {
      double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f = static_cast<float>(f / rope.factor);  // long wavelengths: fully interpolated
      } else if (wavelen >= high_freq_wavelen) {
        // Between the bands: blend interpolated and original frequency.
        double smooth = (original / wavelen - rope.low_freq_factor) /
                        (rope.high_freq_factor - rope.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / rope.factor + smooth * f);
      }
    }
  }
  return inv_freq;
}

RopeFrequencies::RopeFrequencies(const RopeConfig& rope, int64_t head_dim,
                                 int64_t max_position_embeddings)
    : rope_(rope),
      head_dim_(head_dim),
      max_positions_(max_position_embeddings),
      cached_length_(max_position_embeddings),
      inv_freq_(rope_inverse_frequencies(rope, head_dim, max_position_embeddings,
                                         max_position_embeddings)) {}

std::span<const float> RopeFrequencies::for_length(int64_t sequence_length) {
  if (rope_.type != RopeType::Dynamic) return inv_freq_;
  // As transformers: grow when the sequence passes the cached length, and return to the
  // original frequencies once a sequence fits the trained context again.
  const int64_t trained = rope_.original_max_position_embeddings > 0
                              ? rope_.original_max_position_embeddings
                              : max_positions_;
  if (sequence_length > cached_length_) {
    inv_freq_ = rope_inverse_frequencies(rope_, head_dim_, max_positions_, sequence_length);
    cached_length_ = sequence_length;
  } else if (sequence_length < trained && cached_length_ > trained) {
    inv_freq_ = rope_inverse_frequencies(rope_, head_dim_, max_positions_, trained);
    cached_length_ = trained;
  }
  return inv_freq_;
}

}  // namespace flow2
