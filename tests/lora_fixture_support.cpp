#include "lora_fixture_support.h"

#include <algorithm>
#include <cmath>

namespace flow2::testing {

std::vector<LoraCase> lora_cases() {
  return {{"tiny-llama", 1e-4}, {"tiny-qwen2", 1e-4}, {"tiny-smol", 1e-3}, {"tiny-gpt2", 1e-3}};
}

Batch lora_reference_batch(const SafetensorsFile& reference) {
  const HostTensor& ids = reference.get("input_ids");
  std::vector<int64_t> id_values = ids.to_i64();
  std::vector<int64_t> mask = reference.get("attention_mask").to_i64();
  std::vector<int64_t> labels = reference.get("labels").to_i64();
  Batch batch;
  batch.rows = ids.shape[0];
  batch.columns = ids.shape[1];
  for (size_t i = 0; i < id_values.size(); ++i) {
    batch.ids.push_back(static_cast<int32_t>(id_values[i]));
    batch.label_mask.push_back(labels[i] != -100 ? 1 : 0);
    batch.segments.push_back(static_cast<int32_t>(mask[i]));
  }
  for (int64_t r = 0; r < batch.rows; ++r) {
    int32_t length = 0;
    for (int64_t t = 0; t < batch.columns; ++t) length += mask[r * batch.columns + t] ? 1 : 0;
    batch.lengths.push_back(length);
  }
  return batch;
}

double max_reference_logit_error(Model& model, const SafetensorsFile& reference) {
  Batch batch = lora_reference_batch(reference);
  std::vector<float> expected = reference.get("logits_with_adapter").to_f32();
  const int64_t vocab = model.config().vocab_size;
  double worst = 0.0;
  for (int64_t r = 0; r < batch.rows; ++r) {
    const int64_t length = batch.lengths[r];
    std::span<const int32_t> ids(batch.ids.data() + r * batch.columns, length);
    KVCache cache = model.make_cache(1, length);
    std::vector<float> logits = model.backend().to_host(model.forward(ids, 1, cache));
    for (int64_t i = 0; i < length * vocab; ++i) {
      const float want = expected[(r * batch.columns) * vocab + i];
      worst = std::max(worst, static_cast<double>(std::abs(logits[i] - want)));
    }
  }
  return worst;
}

}  // namespace flow2::testing
