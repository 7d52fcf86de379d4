// RoPE inverse frequencies as transformers computes them for each rope type, including the
// dynamic-NTK update that rescales the base once a sequence outgrows the trained context.
#pragma once

#include <span>
#include <vector>

#include "flow2/model_config.h"

namespace flow2 {

// inv_freq[i] = 1 / theta^(2i / head_dim), then scaled as `rope` says; `sequence_length` only
// matters for the dynamic type.
std::vector<float> rope_inverse_frequencies(const RopeConfig& rope, int64_t head_dim,
                                            int64_t max_position_embeddings,
                                            int64_t sequence_length);

class RopeFrequencies {
 public:
  RopeFrequencies(const RopeConfig& rope, int64_t head_dim, int64_t max_position_embeddings);
  // The frequencies for a forward pass whose highest position is `sequence_length - 1`.
  std::span<const float> for_length(int64_t sequence_length);

 private:
  RopeConfig rope_;
  int64_t head_dim_;
  int64_t max_positions_;
  int64_t cached_length_;
  std::vector<float> inv_freq_;
};

}  // namespace flow2
