// The CUDA backend: float32 activations, weights kept compact on the device (float32, bf16, f16
// or ggml blocks), GEMV kernels for decoding and cuBLAS tensor-core GEMMs for prompts.
#pragma once

#include <memory>
#include <optional>

#include "backend/cuda/cuda_context.h"
#include "backend/cuda/cuda_host_ids.h"
#include "backend/cuda/cuda_kernels.h"
#include "flow2/backend.h"

namespace flow2 {

namespace cuda {
class WeightUploader;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);

  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }

  Tensor empty(Shape shape) override;
  Tensor zeros(Shape shape) override;
  Tensor upload_weight(const HostTensor& host) override;
  void prepare_weights(const WeightStore& store) override;  // cuda_upload.cpp
  Tensor from_host(std::span<const float> values, Shape shape) override;
  Tensor make_cache_tensor(Shape shape) override;
  std::vector<float> to_host(const Tensor& tensor) override;
  std::vector<int32_t> argmax_rows(const Tensor& logits) override;
  std::vector<int32_t> sample_rows(const Tensor& logits, const SamplingOptions& options,
                                   std::span<const int32_t> history,
                                   std::span<const double> uniforms) override;
  // Tokens chosen on the GPU for the next step (cuda_choose.cpp).
  Tensor make_token_ids(int64_t rows) override;
  int64_t choose_into(Tensor& ids, const Tensor& logits, const SamplingOptions& options,
                      std::span<const double> uniforms) override;
  std::vector<int32_t> chosen_ids(int64_t ticket) override;
  void embedding_of_ids(Tensor& out, const Tensor& table, const Tensor& ids) override;

  void begin_step() override;
  void end_step() override;
  void abort_step() override;
  int64_t peak_device_bytes() const override;

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

  void add_rms_norm(Tensor& x, const Tensor& delta, Tensor& out, const Tensor& weight,
                    float eps) override;
  void gated_matmul(Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up,
                    Activation activation) override;
  void shared_input_matmul(std::span<Tensor* const> outs, const Tensor& x,
                           std::span<const Tensor* const> weights,
                           std::span<const Tensor* const> biases) override;
  void rope_and_cache(Tensor& q, Tensor& k, const Tensor& v, Tensor& k_cache, Tensor& v_cache,
                      int64_t head_dim, std::span<const int32_t> positions,
                      std::span<const float> inv_freq, int64_t batch, int64_t n_tokens,
                      int64_t n_past, std::span<const int64_t> past) override;
  void qkv_rope_cache(Tensor& q, Tensor& k, Tensor& v, const Tensor& x,
                      std::span<const Tensor* const> weights, std::span<const Tensor* const> biases,
                      Tensor& k_cache, Tensor& v_cache, int64_t head_dim,
                      std::span<const int32_t> positions, std::span<const float> inv_freq,
                      int64_t batch, int64_t n_tokens, int64_t n_past,
                      std::span<const int64_t> past) override;

  // Training ops are not on the GPU yet: each throws an error that says so.
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

  // Prompt attention on bf16 tensor cores (on once a 16-bit or block-quantized matrix is
  // uploaded: float32 checkpoints keep float32 attention, as on the CPU).
  void set_tensor_core_attention(bool on) { tensor_core_attention_ = on; }
  // Prompt attention's key groups (cuda_flash_attention.cu): 1 or 2, or 0 to choose by shape.
  void set_attention_key_groups(int groups) { attention_key_groups_ = groups; }
  // Queries per sequence from which attention takes the tensor-core kernel.
  static constexpr int64_t kTensorCoreAttentionMinTokens = 16;

  cuda::Context& context() { return *context_; }
  // upload_weight's staging (cuda_upload.h), made at the first upload.
  cuda::WeightUploader& uploader();

 private:
  Tensor allocate(DType dtype, Shape shape);
  // Each sequence's cache length for the kernels, staged: inside a step always (the next step's
  // graph is then the same), outside one when the sequences differ. Null: every sequence is at
  // n_past, passed by value.
  const int64_t* staged_past(int64_t batch, int64_t n_past, std::span<const int64_t> past);
  // rope_and_cache's checks, and its kernel's parameters (inputs staged).
  cuda::RopeCacheParams rope_cache_params(Tensor& q, Tensor& k, const Tensor& v, Tensor& k_cache,
                                          Tensor& v_cache, int64_t head_dim,
                                          std::span<const int32_t> positions,
                                          std::span<const float> inv_freq, int64_t batch,
                                          int64_t n_tokens, int64_t n_past,
                                          std::span<const int64_t> past);
  // The GEMV segments of shared_input_matmul's products where they run as one launch (decoding:
  // one dtype, float32 x and outputs), else nullopt (the products one by one).
  std::optional<cuda::GemvSegments> gemv_segments_for(std::span<Tensor* const> outs,
                                                      const Tensor& x,
                                                      std::span<const Tensor* const> weights,
                                                      std::span<const Tensor* const> biases);
  Tensor allocate(DType dtype, Shape shape, size_t bytes);
  // Block-quantized matrices in the split layout (cuda_split_upload.cpp).
  Tensor upload_split(const HostTensor& host, DType dtype);
  std::vector<float> split_to_host(const Tensor& tensor);
  // out = x * W^T through cuBLAS (prompts): bf16/f16 tensor cores with float32 accumulation,
  // or float32 sgemm for float32 weights.
  void gemm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias);
  // Where an op that writes `out` (float32, a GEMM's likely x: more rows than the GEMV kernels
  // take) also writes it rounded to bf16, so that the GEMM skips its rounding
  // (Context::set_rounded); null for fewer rows. keep_rounding records it after the op's submit.
  void* rounding_for_gemm(const Tensor& out);
  // Prompts' gated feed-forward with 16-bit weights: the gate and up GEMMs write 16-bit values
  // (as transformers' bf16 forward keeps them) that the activation reads, half the bytes of
  // float32 outputs both ways (cuda_matmul.cpp).
  bool prompt_gate_up_16bit(const Tensor& out, const Tensor& x, const Tensor& gate,
                            const Tensor& up) const;
  void prompt_gated_matmul(Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up,
                           Activation activation);
  void keep_rounding(const Tensor& out, void* rounded);
  // Where an op that writes `out` (one float32 row, the x of 4-bit GEMVs) also stages it as int16
  // groups, so that the GEMVs' lanes read it instead of each block quantizing x (cuda_int16_x.cuh);
  // null for other rows, outside decoding steps (Context::x16_groups_buffer) or where no 4-bit
  // matrix is loaded. keep_x16_groups records it after the op's submit; a GEMV asks
  // x16_groups_of before its own.
  void* x16_groups_for(const Tensor& out);
  void keep_x16_groups(const Tensor& out, void* staged);
  const void* x16_groups_of(const Tensor& x) const;

  // Queues embedding's kernel for `count` ids already in device memory (staged or chosen there).
  void submit_embedding(Tensor& out, const Tensor& table, cuda::WeightFormat format,
                        const int32_t* device_ids, int64_t count, bool accumulate);
  // sample_rows's choice for each row of logits queued into `out` (device memory; null: scratch),
  // which it returns.
  const int32_t* choose_rows(const Tensor& logits, const SamplingOptions& options,
                             std::span<const int32_t> history, std::span<const double> uniforms,
                             int32_t* out);

  std::shared_ptr<cuda::Context> context_;
  std::unique_ptr<cuda::HostIdRing> host_ids_ = std::make_unique<cuda::HostIdRing>();
  bool graphs_;  // decoding steps replay as CUDA graphs
  std::shared_ptr<cuda::WeightUploader> uploader_;
  bool tensor_core_attention_ = false;
  bool four_bit_matrices_ = false;  // a 4-bit split-layout matrix was uploaded
  int attention_key_groups_ = 0;
};

// The kernels' name for an activation.
cuda::ActivationKind activation_kind(Activation activation);
// The kernels' name for a tensor's dtype; an error for dtypes the kernels do not read.
cuda::WeightFormat weight_format(DType dtype, const char* op);
// An error naming `op` unless `tensor` is float32 (cuda_ops.cpp).
void check_f32(const Tensor& tensor, const char* op);
// Whether matmul multiplies x (float32) by weights of `dtype` with the GEMV kernels (cuda_matmul):
// the fused decoding ops take one kernel only where each product would (cuda_fused_ops).
bool takes_gemv(const Tensor& x, DType dtype);

}  // namespace flow2
