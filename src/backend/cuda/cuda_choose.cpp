// Choosing tokens where the logits are. argmax_rows and sample_rows read back only the chosen
// ids and wait for them; choose_into leaves them on the GPU, where the next decoding step reads
// them (embedding_of_ids), and copies them to pinned host memory without waiting (HostIdRing):
// the host records step N + 1 while the GPU still computes token N. Measured on an H100 (Q4_0
// Llama-3.1-8B shape, bench_cuda): recording a step took 224-268 us of host time a token,
// during which the GPU idled when every token was read back before the next step.
#include <cstring>

#include "backend/cuda/cuda_backend.h"
#include "flow2/error.h"
#include "generate/sampling_math.h"

namespace flow2 {

const int32_t* CudaBackend::choose_rows(const Tensor& logits, const SamplingOptions& options,
                                        std::span<const int32_t> history,
                                        std::span<const double> uniforms, int32_t* out) {
  check(logits.dtype() == DType::F32, "choosing tokens: logits are float32, not {}",
        dtype_name(logits.dtype()));
  const int64_t rows = logits.rows(), vocab = logits.cols();
  check_sample_rows(rows, options, uniforms);
  check(vocab > 0 && vocab <= sampling::kMaxVocab,
        "choosing tokens: rows of {} logits; sampling takes 1 to {}", vocab, sampling::kMaxVocab);
  const std::vector<PenaltyEntry> entries = penalty_entries(options, history, vocab);
  const bool sampled = options.temperature > 0.0f;

  // One scratch buffer: the chosen ids (where `out` is null), the penalized copy of the logits,
  // the weights.
  auto aligned = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const auto elements = static_cast<size_t>(rows * vocab);
  const size_t ids_bytes = aligned(static_cast<size_t>(rows) * sizeof(int32_t));
  const size_t copy_bytes = entries.empty() ? 0 : aligned(elements * sizeof(float));
  const size_t weight_bytes = sampled ? elements * sizeof(unsigned long long) : 0;
  auto* scratch = static_cast<char*>(context_->scratch(2, ids_bytes + copy_bytes + weight_bytes));
  int32_t* chosen = out ? out : reinterpret_cast<int32_t*>(scratch);
  cudaStream_t stream = context_->stream();
  const float* scores = logits.data_as<float>();
  if (!entries.empty()) {
    auto* copy = reinterpret_cast<float*>(scratch + ids_bytes);
    cuda::check_cuda(
        cudaMemcpyAsync(copy, scores, elements * sizeof(float), cudaMemcpyDeviceToDevice, stream),
        "choosing tokens");
    std::vector<int32_t> ids;
    std::vector<float> amounts;
    for (const PenaltyEntry& entry : entries) {
      ids.push_back(entry.id);
      amounts.push_back(entry.amount);
    }
    const int32_t* staged_ids = context_->stage(std::span<const int32_t>(ids));
    const float* staged_amounts = context_->stage(std::span<const float>(amounts));
    cuda::apply_penalties(copy, rows, vocab, staged_ids, staged_amounts,
                          static_cast<int64_t>(ids.size()), options.repetition_penalty, stream);
    scores = copy;
  }
  if (sampled) {
    cuda::SampleParams params;
    params.scores = scores;
    params.weights = reinterpret_cast<unsigned long long*>(scratch + ids_bytes + copy_bytes);
    params.uniforms = context_->stage(uniforms);
    params.out = chosen;
    params.rows = rows;
    params.vocab = vocab;
    params.temperature = options.temperature;
    params.top_k = options.top_k;
    params.top_p = options.top_p;
    params.min_p = options.min_p;
    cuda::sample_rows(params, stream);
  } else {
    cuda::argmax_rows(scores, rows, vocab, chosen, stream);  // greedy after penalties
  }
  return chosen;
}

std::vector<int32_t> CudaBackend::argmax_rows(const Tensor& logits) {
  check(!context_->in_step(), "argmax_rows: nothing is read back inside a decoding step");
  check_f32(logits, "argmax_rows");
  const int64_t rows = logits.rows(), width = logits.cols();
  std::vector<int32_t> indices(static_cast<size_t>(rows));
  if (rows == 0 || width == 0) return indices;
  auto* device = static_cast<int32_t*>(context_->scratch(2, indices.size() * sizeof(int32_t)));
  cuda::argmax_rows(logits.data_as<float>(), rows, width, device, context_->stream());
  cuda::check_cuda(cudaMemcpyAsync(indices.data(), device, indices.size() * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, context_->stream()),
                   "argmax_rows");
  context_->synchronize();
  return indices;
}

std::vector<int32_t> CudaBackend::sample_rows(const Tensor& logits, const SamplingOptions& options,
                                              std::span<const int32_t> history,
                                              std::span<const double> uniforms) {
  check(!context_->in_step(), "sample_rows: nothing is read back inside a decoding step");
  std::vector<int32_t> tokens(static_cast<size_t>(logits.rows()));
  if (tokens.empty()) {
    check_sample_rows(0, options, uniforms);
    return tokens;
  }
  const int32_t* chosen = choose_rows(logits, options, history, uniforms, nullptr);
  cuda::check_cuda(cudaMemcpyAsync(tokens.data(), chosen, tokens.size() * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, context_->stream()),
                   "sample_rows");
  context_->synchronize();
  return tokens;
}

Tensor CudaBackend::make_token_ids(int64_t rows) {
  check(rows > 0, "make_token_ids: {} rows", rows);
  return allocate(DType::I32, {rows});
}

int64_t CudaBackend::choose_into(Tensor& ids, const Tensor& logits, const SamplingOptions& options,
                                 std::span<const double> uniforms) {
  check(!context_->in_step(), "choose_into: not inside a decoding step");
  check(ids.dtype() == DType::I32 && ids.device() == Device::CUDA && ids.numel() == logits.rows(),
        "choose_into: ids are an int32 CUDA tensor of {} values (make_token_ids), not {} {}",
        logits.rows(), dtype_name(ids.dtype()), shape_string(ids.shape()));
  check(options.repetition_penalty == 1.0f && options.presence_penalty == 0.0f &&
            options.frequency_penalty == 0.0f,
        "choose_into: penalties need the latest tokens on the host; use sample_rows");
  auto* out = static_cast<int32_t*>(ids.data());
  if (logits.rows() > 0) choose_rows(logits, options, {}, uniforms, out);
  return host_ids_->copy(out, logits.rows(), context_->stream());
}

std::vector<int32_t> CudaBackend::chosen_ids(int64_t ticket) {
  return host_ids_->wait(ticket);
}

void CudaBackend::embedding_of_ids(Tensor& out, const Tensor& table, const Tensor& ids) {
  const int64_t width = table.cols(), count = ids.numel();
  check(ids.dtype() == DType::I32 && ids.device() == Device::CUDA,
        "embedding_of_ids: ids are an int32 CUDA tensor (make_token_ids), not {}",
        dtype_name(ids.dtype()));
  check(out.rows() == count && out.cols() == width,
        "embedding_of_ids: output {} does not fit {} ids of width {}", shape_string(out.shape()),
        count, width);
  const cuda::WeightFormat format = weight_format(table.dtype(), "embedding");
  if (count == 0) return;
  // The ids come from choose_into over logits as wide as the table is long (Model::forward).
  submit_embedding(out, table, format, static_cast<const int32_t*>(ids.data()), count, false);
}

}  // namespace flow2
