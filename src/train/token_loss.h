// Cross-entropy of next-token targets from final hidden states, a chunk of rows at a time so
// that only [chunk, vocab] logits exist at once. Rows that predict no target are never
// projected onto the vocabulary.
#pragma once

#include <cstdint>
#include <vector>

#include "flow2/backend.h"

namespace flow2 {

struct TokenTargets {
  std::vector<int64_t> rows;    // the hidden-state row predicting each target
  std::vector<int32_t> labels;  // the target token
};

// Sum of -log softmax(h W^T)[label] over the targets. With `d_hidden` (zeroed here, h's shape),
// also its gradient: rows of (softmax - onehot) W.
double token_loss(Backend& backend, const Tensor& hidden, const Tensor& lm_head,
                  const TokenTargets& targets, Tensor* d_hidden);

}  // namespace flow2
