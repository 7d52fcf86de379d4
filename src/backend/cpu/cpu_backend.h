// The CPU backend: float32 compute with OpenBLAS matrix products and OpenMP-parallel loops.
#pragma once

#include "flow2/backend.h"

namespace flow2 {

// Loops over fewer elements than this run on one thread: waking the OpenMP pool costs more
// than it saves, and idle threads spinning hurt when many small processes share the machine.
constexpr int64_t kMinParallelElements = 1 << 15;

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }

  Tensor empty(Shape shape) override;
  Tensor zeros(Shape shape) override;
  Tensor upload_weight(const HostTensor& host) override;
  Tensor from_host(std::span<const float> values, Shape shape) override;
  std::vector<float> to_host(const Tensor& tensor) override;

  void embedding(Tensor& out, const Tensor& table, std::span<const int32_t> ids,
                 bool accumulate) override;
  void matmul(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  void rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override;
  void layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                  float eps) override;
  void rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
            std::span<const float> inv_freq) override;
  void kv_write(Tensor& cache, const Tensor& x, int64_t batch, int64_t n_tokens, int64_t n_past,
                std::span<const int64_t> past) override;
  void attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionShape& shape) override;
  void gated_activation(Tensor& out, const Tensor& gate, const Tensor& up,
                        Activation activation) override;
  void activation(Tensor& x, Activation activation) override;
  void add(Tensor& out, const Tensor& a, const Tensor& b) override;

  void matmul_input_grad(Tensor& dx, const Tensor& dy, const Tensor& weight,
                         bool accumulate) override;
  void rms_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight,
                         float eps) override;
  void layer_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight,
                           float eps) override;
  void segment_attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v, const SegmentAttention& attention) override;
  void segment_attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& d_out,
                                  const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse,
                                  const SegmentAttention& attention) override;
  void gated_activation_backward(Tensor& d_gate, Tensor& d_up, const Tensor& d_out,
                                 const Tensor& gate, const Tensor& up,
                                 Activation activation) override;
  void activation_backward(Tensor& dx, const Tensor& d_out, const Tensor& x,
                           Activation activation) override;
};

// act(x) and act'(x) for every Activation, shared by the forward and backward ops.
float activation_value(float x, Activation activation);
float activation_derivative(float x, Activation activation);

}  // namespace flow2
