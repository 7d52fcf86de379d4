// The CUDA backend's row-wise, elementwise and cache ops: shape checks as the CPU backend makes
// them, then one kernel each. Host spans (ids, positions, frequencies) go through the staging
// ring, so no op waits for the GPU.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/op_checks.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  check(a.numel() == b.numel() && a.cols() == b.cols(), "{}: shapes {} and {} differ", op,
        shape_string(a.shape()), shape_string(b.shape()));
}

// KV caches are float32 or bf16 (make_cache_tensor).
void check_cache(const Tensor& cache, const char* op) {
  check(cache.dtype() == DType::F32 || cache.dtype() == DType::BF16,
        "{}: a KV cache is float32 or bf16, not {}", op, dtype_name(cache.dtype()));
}

}  // namespace

void check_f32(const Tensor& tensor, const char* op) {
  check(tensor.dtype() == DType::F32, "{}: expected a float32 tensor, got {}", op,
        dtype_name(tensor.dtype()));
}

cuda::ActivationKind activation_kind(Activation activation) {
  switch (activation) {
    case Activation::Silu:
      return cuda::ActivationKind::Silu;
    case Activation::GeluTanh:
      return cuda::ActivationKind::GeluTanh;
    case Activation::GeluErf:
      return cuda::ActivationKind::GeluErf;
    case Activation::Relu:
      return cuda::ActivationKind::Relu;
  }
  fail("unknown activation");
}

void CudaBackend::embedding(Tensor& out, const Tensor& table, std::span<const int32_t> ids,
                            bool accumulate) {
  const int64_t width = table.cols();
  check(out.rows() == static_cast<int64_t>(ids.size()) && out.cols() == width,
        "embedding: output {} does not fit {} ids of width {}", shape_string(out.shape()),
        ids.size(), width);
  const cuda::WeightFormat format = weight_format(table.dtype(), "embedding");
  if (ids.empty()) return;
  for (int32_t id : ids) {  // a wrong id would read outside the table on the device
    check(id >= 0 && id < table.rows(), "embedding: id {} outside the table's {} rows", id,
          table.rows());
  }
  submit_embedding(out, table, format, context_->stage(ids), static_cast<int64_t>(ids.size()),
                   accumulate);
}

void CudaBackend::submit_embedding(Tensor& out, const Tensor& table, cuda::WeightFormat format,
                                   const int32_t* device_ids, int64_t count, bool accumulate) {
  const void* data = table.data();
  const int64_t width = table.cols();
  float* result = out.data_as<float>();
  context_->submit(
      "embedding",
      [=](cudaStream_t stream) {
        cuda::embedding(format, data, device_ids, count, width, result, accumulate, stream);
      },
      format, data, device_ids, count, width, result, accumulate);
}

void CudaBackend::rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  check_same_shape(out, x, "rms_norm");
  check(weight.numel() == x.cols(), "rms_norm: weight has {} elements, rows have {}",
        weight.numel(), x.cols());
  check_f32(weight, "rms_norm");
  float* result = out.data_as<float>();
  const float* in = x.data_as<float>();
  const float* scale = weight.data_as<float>();
  const int64_t rows = x.rows(), width = x.cols();
  void* staged = cuda::norm_in_quads(in, nullptr, result, scale, nullptr, width)
                     ? x16_groups_for(out)
                     : nullptr;
  context_->submit(
      "rms_norm",
      [=](cudaStream_t stream) {
        cuda::rms_norm(result, in, scale, rows, width, eps, stream, staged);
      },
      result, in, scale, rows, width, eps, staged);
  keep_x16_groups(out, staged);
}

void CudaBackend::layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                             float eps) {
  check_same_shape(out, x, "layer_norm");
  check(weight.numel() == x.cols() && bias.numel() == x.cols(),
        "layer_norm: weight/bias do not match rows of {}", x.cols());
  check_f32(weight, "layer_norm");
  check_f32(bias, "layer_norm");
  float* result = out.data_as<float>();
  const float* in = x.data_as<float>();
  const float* scale = weight.data_as<float>();
  const float* shift = bias.data_as<float>();
  const int64_t rows = x.rows(), width = x.cols();
  context_->submit(
      "layer_norm",
      [=](cudaStream_t stream) {
        cuda::layer_norm(result, in, scale, shift, rows, width, eps, stream);
      },
      result, in, scale, shift, rows, width, eps);
}

void CudaBackend::rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
                       std::span<const float> inv_freq) {
  check_rope(x, head_dim, positions, inv_freq);
  if (x.numel() == 0) return;
  float* values = x.data_as<float>();
  const int64_t rows = x.rows(), heads = x.cols() / head_dim;
  const int32_t* staged_positions = context_->stage(positions);
  const float* staged_frequencies = context_->stage(inv_freq);
  context_->submit(
      "rope",
      [=](cudaStream_t stream) {
        cuda::rope(values, rows, heads, head_dim, staged_positions, staged_frequencies, stream);
      },
      values, rows, heads, head_dim, staged_positions, staged_frequencies);
}

const int64_t* CudaBackend::staged_past(int64_t batch, int64_t n_past,
                                        std::span<const int64_t> past) {
  check(past.empty() || static_cast<int64_t>(past.size()) == batch,
        "{} past lengths for {} sequences", past.size(), batch);
  if (!past.empty()) return context_->stage(past);
  if (!context_->in_step()) return nullptr;
  const std::vector<int64_t> uniform(static_cast<size_t>(batch), n_past);
  return context_->stage(std::span<const int64_t>(uniform));
}

void CudaBackend::kv_write(Tensor& cache, const Tensor& x, int64_t batch, int64_t n_tokens,
                           int64_t n_past, std::span<const int64_t> past) {
  const int64_t capacity = check_kv_write(cache, x, batch, n_tokens, n_past, past);
  const int64_t width = x.cols();
  if (batch * n_tokens * width == 0) return;
  check_cache(cache, "kv_write");
  void* rows = cache.data();
  const bool bf16 = cache.dtype() == DType::BF16;
  const float* source = x.data_as<float>();
  const int64_t* staged = staged_past(batch, n_past, past);
  const int64_t offset = staged ? 0 : n_past;
  if (!staged && !bf16) {
    // Float32 rows at a known offset: one strided copy at the copy engine's full rate.
    const size_t row_bytes = static_cast<size_t>(width) * sizeof(float);
    float* target = static_cast<float*>(rows) + offset * width;
    context_->submit(
        "kv_write copy",
        [=](cudaStream_t stream) {
          cuda::check_cuda(
              cudaMemcpy2DAsync(target, static_cast<size_t>(capacity) * row_bytes, source,
                                static_cast<size_t>(n_tokens) * row_bytes,
                                static_cast<size_t>(n_tokens) * row_bytes,
                                static_cast<size_t>(batch), cudaMemcpyDeviceToDevice, stream),
              "kv_write");
        },
        target, source, batch, n_tokens, width, capacity);
    return;
  }
  context_->submit(
      "kv_write",
      [=](cudaStream_t stream) {
        cuda::kv_write(rows, bf16, source, batch, n_tokens, width, capacity, offset, staged,
                       stream);
      },
      rows, bf16, source, batch, n_tokens, width, capacity, offset, staged);
}

void CudaBackend::attention(Tensor& out, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionShape& shape) {
  const int64_t capacity = check_attention(out, q, k_cache, v_cache, shape);
  const int64_t head_dim = shape.head_dim;
  check(head_dim <= cuda::kAttentionMaxHeadDim && head_dim % 4 == 0,
        "attention: the CUDA kernel takes head dimensions of 4n up to {}, not {}",
        cuda::kAttentionMaxHeadDim, head_dim);
  const int64_t total = longest_past(shape) + shape.n_tokens;

  cuda::AttentionParams params;
  params.q = q.data_as<float>();
  check_cache(k_cache, "attention");
  check(v_cache.dtype() == k_cache.dtype(), "attention: key cache {} but value cache {}",
        dtype_name(k_cache.dtype()), dtype_name(v_cache.dtype()));
  params.k = k_cache.data();
  params.v = v_cache.data();
  params.bf16_cache = k_cache.dtype() == DType::BF16;
  params.out = out.data_as<float>();
  params.batch = shape.batch;
  params.n_tokens = shape.n_tokens;
  params.n_past = shape.n_past;
  params.n_heads = shape.n_heads;
  params.n_kv_heads = shape.n_kv_heads;
  params.head_dim = head_dim;
  params.capacity = capacity;
  params.window = shape.sliding_window;
  params.scale = shape.scale;
  if (tensor_core_attention_ && shape.n_tokens >= kTensorCoreAttentionMinTokens &&
      cuda::flash_attention_supported(head_dim)) {
    params.device_n_past = staged_past(shape.batch, shape.n_past, shape.past);
    if (params.device_n_past) params.n_past = 0;
    params.out_bf16 = rounding_for_gemm(out);
    params.key_groups = attention_key_groups_;
    context_->submit(
        "flash_attention", [=](cudaStream_t stream) { cuda::flash_attention(params, stream); },
        params.q, params.k, params.v, params.bf16_cache, params.out, params.out_bf16,
        params.key_groups, params.batch, params.n_tokens, params.n_past, params.n_heads,
        params.n_kv_heads, params.head_dim, params.capacity, params.window, params.scale,
        params.device_n_past);
    keep_rounding(out, params.out_bf16);
    return;
  }
  const bool step = context_->in_step();
  if (cuda::decode_attention_supported(params) &&
      shape.batch * shape.n_kv_heads <= cuda::Context::kCompletionCounters) {
    // The split count follows the capacity in a step, as below.
    const int64_t splits =
        cuda::decode_attention_splits(params, step ? capacity : total, context_->multiprocessors());
    params.device_n_past = staged_past(shape.batch, shape.n_past, shape.past);
    if (params.device_n_past) params.n_past = 0;
    if (splits > 1) {
      params.partial = static_cast<float*>(
          context_->scratch(2, static_cast<size_t>(splits * shape.batch * shape.n_kv_heads *
                                                   cuda::decode_attention_record_floats(params)) *
                                   sizeof(float)));
    }
    int* counters = context_->completion_counters();
    // The output is the o projection's x: staged as int16 inside a decoding step, unless
    // FLOW2_CUDA_ATTENTION_X16=0 (to compare).
    static const bool stage_output = [] {
      const char* value = std::getenv("FLOW2_CUDA_ATTENTION_X16");
      return !value || std::string(value) != "0";
    }();
    params.out_x16 = stage_output ? x16_groups_for(out) : nullptr;
    context_->submit(
        "decode attention",
        [=](cudaStream_t stream) { cuda::decode_attention(params, splits, counters, stream); },
        params.q, params.k, params.v, params.bf16_cache, params.out, params.partial, params.batch,
        params.n_past, params.n_heads, params.n_kv_heads, params.head_dim, params.capacity,
        params.window, splits, params.scale, params.device_n_past, params.out_x16);
    keep_x16_groups(out, params.out_x16);
    return;
  }
  // Split the keys when the queries alone give fewer than two blocks per multiprocessor (decode),
  // keeping at least 64 keys per split. In a step the split count must not depend on the cache
  // length (the next step replays the same graph): it follows the capacity, and the kernel reads
  // the staged length.
  const int64_t blocks = cuda::attention_blocks(params);
  const int64_t wanted = (2 * context_->multiprocessors() + blocks - 1) / blocks;
  const int64_t keys = step ? capacity : total;
  params.splits = std::clamp<int64_t>(std::min(wanted, keys / 64), 1, 64);
  params.device_n_past = staged_past(shape.batch, shape.n_past, shape.past);
  if (params.splits > 1) {
    const int64_t pairs = shape.batch * shape.n_tokens * shape.n_heads;
    params.partial = static_cast<float*>(context_->scratch(
        2, static_cast<size_t>(params.splits * pairs * (head_dim + 2)) * sizeof(float)));
  }
  if (params.device_n_past) params.n_past = 0;  // read per sequence from device_n_past
  context_->submit(
      "attention", [=](cudaStream_t stream) { cuda::attention(params, stream); }, params.q,
      params.k, params.v, params.bf16_cache, params.out, params.partial, params.batch,
      params.n_tokens, params.n_past, params.n_heads, params.n_kv_heads, params.head_dim,
      params.capacity, params.window, params.splits, params.scale, params.device_n_past);
}

void CudaBackend::gated_activation(Tensor& out, const Tensor& gate, const Tensor& up,
                                   Activation activation) {
  check_same_shape(gate, up, "gated_activation");
  check_same_shape(out, gate, "gated_activation");
  float* result = out.data_as<float>();
  const float* gates = gate.data_as<float>();
  const float* ups = up.data_as<float>();
  const int64_t count = out.numel();
  const cuda::ActivationKind kind = activation_kind(activation);
  void* rounded = rounding_for_gemm(out);
  context_->submit(
      "gated_activation",
      [=](cudaStream_t stream) {
        cuda::gated_activation(result, gates, ups, count, kind, rounded, stream);
      },
      result, gates, ups, count, kind, rounded);
  keep_rounding(out, rounded);
}

void CudaBackend::activation(Tensor& x, Activation activation) {
  float* values = x.data_as<float>();
  const int64_t count = x.numel();
  const cuda::ActivationKind kind = activation_kind(activation);
  context_->submit(
      "activation", [=](cudaStream_t stream) { cuda::activation(values, count, kind, stream); },
      values, count, kind);
}

void CudaBackend::add(Tensor& out, const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "add");
  check_same_shape(out, a, "add");
  float* result = out.data_as<float>();
  const float* left = a.data_as<float>();
  const float* right = b.data_as<float>();
  const int64_t count = out.numel();
  context_->submit(
      "add", [=](cudaStream_t stream) { cuda::add(result, left, right, count, stream); }, result,
      left, right, count);
}

Tensor CudaBackend::make_cache_tensor(Shape shape) {
  // bf16 halves the bytes attention reads; float32 checkpoints keep float32, as on the CPU.
  return allocate(tensor_core_attention_ ? DType::BF16 : DType::F32, std::move(shape));
}

}  // namespace flow2
