// The CUDA backend's fused ops (Backend's "fused ops"): the checks of the ops they stand for,
// then one kernel.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_backend.h"
#include "backend/op_checks.h"
#include "flow2/error.h"

namespace flow2 {

void CudaBackend::add_rms_norm(Tensor& x, const Tensor& delta, Tensor& out, const Tensor& weight,
                               float eps) {
  check(x.numel() == delta.numel() && x.cols() == delta.cols() && out.numel() == x.numel() &&
            out.cols() == x.cols(),
        "add_rms_norm: shapes {}, {} and {} differ", shape_string(x.shape()),
        shape_string(delta.shape()), shape_string(out.shape()));
  check(weight.numel() == x.cols() && weight.dtype() == DType::F32,
        "add_rms_norm: weight {} {} does not fit rows of {}", dtype_name(weight.dtype()),
        shape_string(weight.shape()), x.cols());
  float* values = x.data_as<float>();
  const float* added = delta.data_as<float>();
  float* result = out.data_as<float>();
  const float* scale = weight.data_as<float>();
  const int64_t rows = x.rows(), width = x.cols();
  void* rounded = rounding_for_gemm(out);
  void* staged = cuda::norm_in_quads(values, added, result, scale, rounded, width)
                     ? x16_groups_for(out)
                     : nullptr;
  context_->submit(
      "add_rms_norm",
      [=](cudaStream_t stream) {
        cuda::add_rms_norm(values, added, result, scale, rows, width, eps, rounded, stream, staged);
      },
      values, added, result, scale, rows, width, eps, rounded, staged);
  keep_rounding(out, rounded);
  keep_x16_groups(out, staged);
}

namespace {

// FLOW2_CUDA_QKV_ROPE=0 runs qkv_rope_cache as its two ops (to compare).
bool rope_in_epilogue() {
  static const bool on = [] {
    const char* value = std::getenv("FLOW2_CUDA_QKV_ROPE");
    return !(value && std::strcmp(value, "0") == 0);
  }();
  return on;
}

}  // namespace

cuda::RopeCacheParams CudaBackend::rope_cache_params(
    Tensor& q, Tensor& k, const Tensor& v, Tensor& k_cache, Tensor& v_cache, int64_t head_dim,
    std::span<const int32_t> positions, std::span<const float> inv_freq, int64_t batch,
    int64_t n_tokens, int64_t n_past, std::span<const int64_t> past) {
  const int64_t rows = q.rows(), kv_width = k.cols();
  check(head_dim > 0 && head_dim % 2 == 0 && q.cols() % head_dim == 0 && kv_width % head_dim == 0,
        "rope_and_cache: head dimension {} does not divide {} and {}", head_dim, q.cols(),
        kv_width);
  check(inv_freq.empty() || static_cast<int64_t>(inv_freq.size()) == head_dim / 2,
        "rope_and_cache: {} frequencies for head dimension {}", inv_freq.size(), head_dim);
  check(k.rows() == rows && v.rows() == rows && v.cols() == kv_width &&
            rows == static_cast<int64_t>(positions.size()) && rows == batch * n_tokens,
        "rope_and_cache: q {}, k {}, v {} and {} positions do not agree", shape_string(q.shape()),
        shape_string(k.shape()), shape_string(v.shape()), positions.size());
  check(k_cache.cols() == kv_width && v_cache.cols() == kv_width &&
            k_cache.rows() == v_cache.rows() && k_cache.rows() % batch == 0,
        "rope_and_cache: caches {} do not fit rows of {} for batch {}",
        shape_string(k_cache.shape()), kv_width, batch);
  const int64_t capacity = k_cache.rows() / batch;
  const int64_t longest = longest_past(n_past, past);
  check(longest + n_tokens <= capacity, "rope_and_cache: {} tokens exceed the cache capacity {}",
        longest + n_tokens, capacity);
  check((k_cache.dtype() == DType::F32 || k_cache.dtype() == DType::BF16) &&
            v_cache.dtype() == k_cache.dtype(),
        "rope_and_cache: caches are {} and {}, not both float32 or both bf16",
        dtype_name(k_cache.dtype()), dtype_name(v_cache.dtype()));
  cuda::RopeCacheParams p;
  if (rows == 0) return p;
  p.q = q.data_as<float>();
  p.k = k.data_as<float>();
  p.v = v.data_as<float>();
  p.k_cache = k_cache.data();
  p.v_cache = v_cache.data();
  p.bf16_cache = k_cache.dtype() == DType::BF16;
  p.positions = context_->stage(positions);
  p.inv_freq = inv_freq.empty() ? nullptr : context_->stage(inv_freq);
  p.rows = rows;
  p.n_tokens = n_tokens;
  p.q_heads = q.cols() / head_dim;
  p.kv_heads = kv_width / head_dim;
  p.head_dim = head_dim;
  p.capacity = capacity;
  p.device_n_past = staged_past(batch, n_past, past);
  if (!p.device_n_past) p.n_past = n_past;
  return p;
}

void CudaBackend::rope_and_cache(Tensor& q, Tensor& k, const Tensor& v, Tensor& k_cache,
                                 Tensor& v_cache, int64_t head_dim,
                                 std::span<const int32_t> positions,
                                 std::span<const float> inv_freq, int64_t batch, int64_t n_tokens,
                                 int64_t n_past, std::span<const int64_t> past) {
  const cuda::RopeCacheParams p = rope_cache_params(q, k, v, k_cache, v_cache, head_dim, positions,
                                                    inv_freq, batch, n_tokens, n_past, past);
  if (p.rows == 0) return;
  context_->submit(
      "rope_and_cache", [=](cudaStream_t stream) { cuda::rope_and_cache(p, stream); }, p.q, p.k,
      p.v, p.k_cache, p.v_cache, p.bf16_cache, p.positions, p.inv_freq, p.rows, p.n_tokens,
      p.q_heads, p.kv_heads, p.head_dim, p.capacity, p.n_past, p.device_n_past);
}

void CudaBackend::gated_matmul(Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up,
                               Activation activation) {
  const cuda::WeightFormat format = weight_format(gate.dtype(), "gated_matmul");
  const int64_t m = x.rows(), n = gate.rows(), k = x.cols();
  const bool fused = takes_gemv(x, gate.dtype()) && up.dtype() == gate.dtype() &&
                     cuda::gemv_gated_supported(format) && up.rows() == n && gate.cols() == k &&
                     up.cols() == k && out.rows() == m && out.cols() == n &&
                     x.dtype() == DType::F32 && out.dtype() == DType::F32;
  if (!fused && m > cuda::kGemvMaxRows && n > 0 && k > 0 &&
      prompt_gate_up_16bit(out, x, gate, up)) {
    prompt_gated_matmul(out, x, gate, up, activation);
    return;
  }
  if (!fused || m == 0 || n == 0 || k == 0) {
    Backend::gated_matmul(out, x, gate, up, activation);  // the checked ops, one by one
    return;
  }
  const void* gate_rows = gate.data();
  const void* up_rows = up.data();
  const float* in = x.data_as<float>();
  float* result = out.data_as<float>();
  const cuda::ActivationKind kind = activation_kind(activation);
  const void* staged = x16_groups_of(x);
  void* staged_out = cuda::gemv_gated_stages_output(format, m, n) ? x16_groups_for(out) : nullptr;
  context_->submit(
      "gated_matmul",
      [=](cudaStream_t stream) {
        cuda::gemv_gated(format, gate_rows, up_rows, in, result, m, n, k, kind, stream, staged,
                         staged_out);
      },
      format, gate_rows, up_rows, in, result, m, n, k, kind, staged, staged_out);
  keep_x16_groups(out, staged_out);
}

std::optional<cuda::GemvSegments> CudaBackend::gemv_segments_for(
    std::span<Tensor* const> outs, const Tensor& x, std::span<const Tensor* const> weights,
    std::span<const Tensor* const> biases) {
  const auto count = static_cast<int>(weights.size());
  const int64_t m = x.rows(), k = x.cols();
  // One launch where each product would be a GEMV of the same weight format; otherwise (prompts,
  // mixed formats, more matrices than a launch takes) the products one by one.
  bool fused = count >= 1 && count <= cuda::kGemvMaxSegments && m > 0 && k > 0 &&
               x.dtype() == DType::F32 && takes_gemv(x, weights[0]->dtype());
  for (int i = 0; fused && i < count; ++i) {
    fused = weights[i]->dtype() == weights[0]->dtype() && weights[i]->rows() > 0 &&
            outs[i]->dtype() == DType::F32 && (!biases[i] || biases[i]->dtype() == DType::F32);
  }
  if (!fused) return std::nullopt;
  cuda::GemvSegments segments;
  segments.count = count;
  for (int i = 0; i < count; ++i) {
    segments.segment[i] = {weights[i]->data(), biases[i] ? biases[i]->data_as<float>() : nullptr,
                           outs[i]->data_as<float>(), weights[i]->rows()};
  }
  return segments;
}

void CudaBackend::shared_input_matmul(std::span<Tensor* const> outs, const Tensor& x,
                                      std::span<const Tensor* const> weights,
                                      std::span<const Tensor* const> biases) {
  check_shared_input_matmul(outs, x, weights, biases);
  const std::optional<cuda::GemvSegments> fused = gemv_segments_for(outs, x, weights, biases);
  if (!fused) {
    Backend::shared_input_matmul(outs, x, weights, biases);
    return;
  }
  const cuda::GemvSegments segments = *fused;
  const cuda::WeightFormat format = weight_format(weights[0]->dtype(), "shared_input_matmul");
  const float* in = x.data_as<float>();
  const int64_t m = x.rows(), k = x.cols();
  const int count = segments.count;
  const void* staged = x16_groups_of(x);
  // The signature names every segment (unused ones are null and 0).
  static_assert(cuda::kGemvMaxSegments == 4, "the signature below lists 4 segments");
  const auto& s = segments.segment;
  context_->submit(
      "shared_input_matmul",
      [=](cudaStream_t stream) { cuda::gemv_segments(format, segments, in, m, k, stream, staged); },
      format, in, staged, m, k, count, s[0].weight, s[0].bias, s[0].out, s[0].n, s[1].weight,
      s[1].bias, s[1].out, s[1].n, s[2].weight, s[2].bias, s[2].out, s[2].n, s[3].weight, s[3].bias,
      s[3].out, s[3].n);
}

void CudaBackend::qkv_rope_cache(Tensor& q, Tensor& k, Tensor& v, const Tensor& x,
                                 std::span<const Tensor* const> weights,
                                 std::span<const Tensor* const> biases, Tensor& k_cache,
                                 Tensor& v_cache, int64_t head_dim,
                                 std::span<const int32_t> positions,
                                 std::span<const float> inv_freq, int64_t batch, int64_t n_tokens,
                                 int64_t n_past, std::span<const int64_t> past) {
  Tensor* const outs[] = {&q, &k, &v};
  check_shared_input_matmul(outs, x, weights, biases);
  check(weights.size() == 3, "qkv_rope_cache: {} weights, not q, k and v", weights.size());
  // One launch where the products would be one (decoding), a head's rows pair up within the
  // kernels' tiles and the kernel splits rows as shared_input_matmul's would (so the results are
  // the same); otherwise the two ops.
  std::optional<cuda::GemvSegments> fused;
  if (rope_in_epilogue() && head_dim % cuda::kRopeTileMultiple == 0) {
    fused = gemv_segments_for(outs, x, weights, biases);
  }
  const int64_t rows = weights[0]->rows() + weights[1]->rows() + weights[2]->rows();
  if (fused && !cuda::gemv_rope_cache_supported(
                   weight_format(weights[0]->dtype(), "qkv_rope_cache"), rows, x.cols())) {
    fused.reset();
  }
  if (!fused) {
    Backend::qkv_rope_cache(q, k, v, x, weights, biases, k_cache, v_cache, head_dim, positions,
                            inv_freq, batch, n_tokens, n_past, past);
    return;
  }
  const cuda::RopeCacheParams p = rope_cache_params(q, k, v, k_cache, v_cache, head_dim, positions,
                                                    inv_freq, batch, n_tokens, n_past, past);
  const cuda::GemvSegments segments = *fused;
  const cuda::WeightFormat format = weight_format(weights[0]->dtype(), "qkv_rope_cache");
  const float* in = x.data_as<float>();
  const int64_t m = x.rows(), width = x.cols();
  const void* staged = x16_groups_of(x);
  const auto& s = segments.segment;
  context_->submit(
      "qkv_rope_cache",
      [=](cudaStream_t stream) {
        cuda::gemv_rope_cache(format, segments, in, m, width, p, stream, staged);
      },
      format, in, staged, m, width, s[0].weight, s[0].bias, s[1].weight, s[1].bias, s[2].weight,
      s[2].bias, p.q, p.k, p.v, p.k_cache, p.v_cache, p.bf16_cache, p.positions, p.inv_freq,
      p.n_tokens, p.q_heads, p.kv_heads, p.head_dim, p.capacity, p.n_past, p.device_n_past);
}

}  // namespace flow2
