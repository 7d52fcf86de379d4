// One decoder layer of the LoRA training model, forward and backward, written out op by op
// (llm.c style). Base weights are frozen: gradients flow only to the layer's input and to the
// LoRA sites. The backward mirrors the forward in reverse:
//   x -> norm -> q,k,v (+LoRA) -> RoPE -> attention -> o (+LoRA) -> + x = middle
//   middle -> norm -> gate, up (+LoRA) -> act(gate) * up -> down (+LoRA) -> + middle
#include <cmath>
#include <cstring>
#include <initializer_list>

#include "train/lora_training_model.h"

namespace flow2 {

void LoraTrainingModel::norm(Tensor& out, const Tensor& x, const Norm& norm) {
  const float eps = static_cast<float>(config_.norm_eps);
  if (norm.bias.defined()) {
    backend_->layer_norm(out, x, norm.weight, norm.bias, eps);
  } else {
    backend_->rms_norm(out, x, norm.weight, eps);
  }
}

void LoraTrainingModel::norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x,
                                      const Norm& norm) {
  const float eps = static_cast<float>(config_.norm_eps);
  if (norm.bias.defined()) {
    backend_->layer_norm_backward(dx, dy, x, norm.weight, eps);
  } else {
    backend_->rms_norm_backward(dx, dy, x, norm.weight, eps);
  }
}

void LoraTrainingModel::linear(Tensor& out, const Tensor& x, const Linear& linear,
                               LayerActivations& a, size_t layer, Projection projection,
                               const StepInputs& step) {
  backend_->matmul(out, x, linear.weight, linear.bias.defined() ? &linear.bias : nullptr);
  const LoraSlot& slot = slots_[layer][projection];
  if (!slot.site) return;
  // A site shared with an earlier projection (c_attn) has projected this input already.
  bool shared = false;
  for (int p = 0; p < projection; ++p) shared = shared || slots_[layer][p].site == slot.site;
  if (!shared) slot.site->project(x, a.lora_u[projection], step.seed, step.train);
  slot.site->add_output(out, a.lora_u[projection], slot.first_row);
}

SegmentAttention LoraTrainingModel::attention_geometry(size_t layer, const StepInputs& step) const {
  float scale = 1.0f;
  if (config_.family != ModelFamily::Gpt2 || config_.scale_attn_weights) {
    scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  }
  if (config_.scale_attn_by_inverse_layer_idx) scale /= static_cast<float>(layer + 1);
  AttentionShape shape{step.batch,
                       step.columns,
                       0,
                       config_.num_heads,
                       config_.num_kv_heads,
                       config_.head_dim,
                       scale,
                       config_.sliding_window_for_layer(static_cast<int64_t>(layer))};
  return SegmentAttention{shape, step.segments};
}

void LoraTrainingModel::forward_layer(size_t layer, LayerActivations& a, Tensor& x_out,
                                      const StepInputs& step) {
  const DecoderLayer& w = weights_.layers[layer];
  norm(a.attention_normed, a.input, w.attention_norm);
  linear(a.q, a.attention_normed, w.q, a, layer, kQ, step);
  linear(a.k, a.attention_normed, w.k, a, layer, kK, step);
  linear(a.v, a.attention_normed, w.v, a, layer, kV, step);
  if (!step.inv_freq.empty()) {
    backend_->rope(a.q, config_.head_dim, step.positions, step.inv_freq);
    backend_->rope(a.k, config_.head_dim, step.positions, step.inv_freq);
  }
  backend_->segment_attention(a.attended, a.lse, a.q, a.k, a.v, attention_geometry(layer, step));
  Tensor projected = backend_->empty({step.tokens, config_.hidden_size});
  linear(projected, a.attended, w.o, a, layer, kO, step);
  backend_->add(a.middle, a.input, projected);

  norm(a.mlp_normed, a.middle, w.mlp_norm);
  if (w.gate.weight.defined()) {
    linear(a.gate, a.mlp_normed, w.gate, a, layer, kGate, step);
    linear(a.up, a.mlp_normed, w.up, a, layer, kUp, step);
    backend_->gated_activation(a.inner, a.gate, a.up, config_.activation);
  } else {
    linear(a.up, a.mlp_normed, w.up, a, layer, kUp, step);
    std::memcpy(a.inner.data(), a.up.data(), a.up.nbytes());
    backend_->activation(a.inner, config_.activation);
  }
  linear(projected, a.inner, w.down, a, layer, kDown, step);
  backend_->add(x_out, a.middle, projected);
}

namespace {

struct Branch {
  Projection projection;
  const Tensor* dy;
};

}  // namespace

void LoraTrainingModel::backward_layer(size_t layer, LayerActivations& a, Tensor& d_x,
                                       const StepInputs& step, bool need_input_grad) {
  const DecoderLayer& w = weights_.layers[layer];
  const auto& slots = slots_[layer];
  const int64_t tokens = step.tokens;
  // LoRA gradients of the projections fed by input x, and their share of dx.
  auto lora_backward = [&](std::initializer_list<Branch> branches, const Tensor& x, Tensor* dx) {
    for (auto it = branches.begin(); it != branches.end(); ++it) {
      LoraSite* site = slots[it->projection].site;
      bool seen = false;
      for (auto before = branches.begin(); before != it; ++before) {
        seen = seen || slots[before->projection].site == site;
      }
      if (!site || seen) continue;
      Tensor du = backend_->zeros({tokens, site->rank()});
      for (auto part = it; part != branches.end(); ++part) {
        if (slots[part->projection].site != site) continue;
        site->backward_output(*part->dy, a.lora_u[part->projection],
                              slots[part->projection].first_row, du);
      }
      site->backward_input(x, du, dx, step.seed, step.train);
    }
  };

  // MLP: d_x is the gradient of the layer output, also of `middle` through the residual.
  Tensor d_inner = backend_->empty({tokens, config_.intermediate_size});
  backend_->matmul_input_grad(d_inner, d_x, w.down.weight, false);
  lora_backward({{kDown, &d_x}}, a.inner, &d_inner);
  Tensor d_normed = backend_->empty({tokens, config_.hidden_size});
  if (w.gate.weight.defined()) {
    Tensor d_gate = backend_->empty({tokens, config_.intermediate_size});
    Tensor d_up = backend_->empty({tokens, config_.intermediate_size});
    backend_->gated_activation_backward(d_gate, d_up, d_inner, a.gate, a.up, config_.activation);
    backend_->matmul_input_grad(d_normed, d_gate, w.gate.weight, false);
    backend_->matmul_input_grad(d_normed, d_up, w.up.weight, true);
    lora_backward({{kGate, &d_gate}, {kUp, &d_up}}, a.mlp_normed, &d_normed);
  } else {
    backend_->activation_backward(d_inner, d_inner, a.up, config_.activation);
    backend_->matmul_input_grad(d_normed, d_inner, w.up.weight, false);
    lora_backward({{kUp, &d_inner}}, a.mlp_normed, &d_normed);
  }
  norm_backward(d_x, d_normed, a.middle, w.mlp_norm);

  // Attention: d_x is now the gradient of `middle`, also of the input through the residual.
  Tensor d_attended = backend_->empty({tokens, config_.q_dim()});
  backend_->matmul_input_grad(d_attended, d_x, w.o.weight, false);
  lora_backward({{kO, &d_x}}, a.attended, &d_attended);
  Tensor dq = backend_->empty({tokens, config_.q_dim()});
  Tensor dk = backend_->empty({tokens, config_.kv_dim()});
  Tensor dv = backend_->empty({tokens, config_.kv_dim()});
  backend_->segment_attention_backward(dq, dk, dv, d_attended, a.q, a.k, a.v, a.attended, a.lse,
                                       attention_geometry(layer, step));
  if (!step.inv_freq.empty()) {
    backend_->rope(dq, config_.head_dim, step.negated_positions, step.inv_freq);
    backend_->rope(dk, config_.head_dim, step.negated_positions, step.inv_freq);
  }
  const std::initializer_list<Branch> qkv = {{kQ, &dq}, {kK, &dk}, {kV, &dv}};
  if (!need_input_grad) {
    lora_backward(qkv, a.attention_normed, nullptr);
    return;
  }
  backend_->matmul_input_grad(d_normed, dq, w.q.weight, false);
  backend_->matmul_input_grad(d_normed, dk, w.k.weight, true);
  backend_->matmul_input_grad(d_normed, dv, w.v.weight, true);
  lora_backward(qkv, a.attention_normed, &d_normed);
  norm_backward(d_x, d_normed, a.input, w.attention_norm);
}

}  // namespace flow2
