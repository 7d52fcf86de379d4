// One adapted Linear during training: the LoRA branch scaling * B (A (dropout(x))) beside a
// frozen weight, forward and backward, with A and B in the adapter's float32 vectors and their
// gradients here. GPT-2's fused c_attn is one site whose B rows feed q, k and v: each output
// part names its first row of B, and A's gradient sums the parts.
#pragma once

#include <cstdint>
#include <vector>

#include "flow2/lora.h"
#include "flow2/tensor.h"

namespace flow2 {

class LoraSite {
 public:
  // `id` distinguishes the dropout masks of sites within a step.
  LoraSite(LoraModule& module, float scaling, float dropout, uint64_t id);

  LoraModule& module() { return module_; }
  int64_t rank() const { return rank_; }
  std::vector<float>& grad_a() { return grad_a_; }
  std::vector<float>& grad_b() { return grad_b_; }

  // u = dropout(x) A^T, [rows, rank]; `seed` 0 with `train` false: no dropout.
  void project(const Tensor& x, Tensor& u, uint64_t seed, bool train) const;
  // y += scaling * u B[first_row : first_row + y.cols()]^T.
  void add_output(Tensor& y, const Tensor& u, int64_t first_row) const;
  // For the output part starting at `first_row`: grad B += scaling * dy^T u and
  // du += scaling * dy B_part.
  void backward_output(const Tensor& dy, const Tensor& u, int64_t first_row, Tensor& du);
  // grad A += du^T dropout(x); with `dx`, dx += dropout'(du A).
  void backward_input(const Tensor& x, const Tensor& du, Tensor* dx, uint64_t seed, bool train);

 private:
  // dropout(x) into `out` (x itself when no dropout applies).
  const float* dropped(const Tensor& x, std::vector<float>& out, uint64_t seed, bool train) const;
  bool drops(bool train) const { return train && dropout_ > 0.0f; }

  LoraModule& module_;
  int64_t rank_;
  float scaling_;
  float dropout_;
  uint64_t id_;
  std::vector<float> grad_a_, grad_b_;
};

}  // namespace flow2
