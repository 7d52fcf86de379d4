// The LoRA training model at batch level: binds the frozen base, maps adapter modules to the
// layers' projections, and runs forward (keeping activations, or only layer inputs with
// gradient checkpointing), the loss, and backward down to the lowest adapted layer.
#include <algorithm>
#include <cstring>

#include "flow2/error.h"
#include "train/lora_training_model.h"
#include "train/token_loss.h"

namespace flow2 {
namespace {

struct ProjectionName {
  const char* suffix;  // the PEFT module path's end
  Projection projection;
};

constexpr ProjectionName kLlamaNames[] = {
    {".self_attn.q_proj", kQ}, {".self_attn.k_proj", kK}, {".self_attn.v_proj", kV},
    {".self_attn.o_proj", kO}, {".mlp.gate_proj", kGate}, {".mlp.up_proj", kUp},
    {".mlp.down_proj", kDown},
};
// c_attn (q, k, v from one site) is handled apart.
constexpr ProjectionName kGpt2Names[] = {
    {".attn.c_proj", kO},
    {".mlp.c_fc", kUp},
    {".mlp.c_proj", kDown},
};

bool ends_with(const std::string& text, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return text.size() >= n && text.compare(text.size() - n, n, suffix) == 0;
}

// [in, out] of each projection in the common layout.
std::pair<int64_t, int64_t> projection_shape(const ModelConfig& c, Projection p) {
  switch (p) {
    case kQ:
      return {c.hidden_size, c.q_dim()};
    case kK:
    case kV:
      return {c.hidden_size, c.kv_dim()};
    case kO:
      return {c.q_dim(), c.hidden_size};
    case kGate:
    case kUp:
      return {c.hidden_size, c.intermediate_size};
    default:
      return {c.intermediate_size, c.hidden_size};
  }
}

}  // namespace

LoraTrainingModel::LoraTrainingModel(const Checkpoint& checkpoint, LoraAdapter& adapter,
                                     const LoraTrainingOptions& options)
    : config_(checkpoint.config),
      adapter_(adapter),
      options_(options),
      backend_(make_cpu_backend()),
      rope_(config_.rope, config_.head_dim, config_.max_position_embeddings) {
  const bool gpt2 = config_.family == ModelFamily::Gpt2;
  weights_ = gpt2 ? bind_gpt2_weights(checkpoint.weights, config_, *backend_)
                  : bind_llama_weights(checkpoint.weights, config_, *backend_);
  slots_.resize(weights_.layers.size());
  check(!adapter.modules.empty(), "the LoRA adapter has no modules to train");
  lowest_adapted_ = weights_.layers.size();
  const float scaling = adapter.config.scaling();
  for (LoraModule& module : adapter.modules) {
    check(module.layer >= 0 && module.layer < config_.num_layers,
          "LoRA module {}: layer {} is not in the model's {} layers", module.name, module.layer,
          config_.num_layers);
    const size_t layer = static_cast<size_t>(module.layer);
    auto site = std::make_unique<LoraSite>(module, scaling, adapter.config.dropout,
                                           static_cast<uint64_t>(sites_.size()));
    std::vector<std::pair<Projection, int64_t>> uses;  // projection, first row of B
    int64_t in = 0, out = 0;
    if (gpt2 && ends_with(module.name, ".attn.c_attn")) {
      uses = {{kQ, 0}, {kK, config_.hidden_size}, {kV, 2 * config_.hidden_size}};
      in = config_.hidden_size;
      out = 3 * config_.hidden_size;
    } else {
      for (const ProjectionName& name : gpt2 ? std::span<const ProjectionName>(kGpt2Names)
                                             : std::span<const ProjectionName>(kLlamaNames)) {
        if (!ends_with(module.name, name.suffix)) continue;
        uses = {{name.projection, 0}};
        std::tie(in, out) = projection_shape(config_, name.projection);
      }
    }
    check(!uses.empty(), "LoRA module {} is no projection of a {} layer", module.name,
          gpt2 ? "gpt2" : "llama-family");
    check(module.in == in && module.out == out,
          "LoRA module {} is [{} -> {}], the model's projection is [{} -> {}]", module.name,
          module.in, module.out, in, out);
    for (auto [projection, first_row] : uses) {
      check(!slots_[layer][projection].site, "LoRA module {} adapts a projection twice",
            module.name);
      slots_[layer][projection] = LoraSlot{site.get(), first_row};
    }
    lowest_adapted_ = std::min(lowest_adapted_, layer);
    sites_.push_back(std::move(site));
  }
}

std::vector<ParameterView> LoraTrainingModel::parameters() {
  std::vector<ParameterView> views;
  for (auto& site : sites_) {
    LoraModule& module = site->module();
    views.push_back(
        {module.name + ".lora_A.weight", module.a.data(), site->grad_a().data(), module.a.size()});
    views.push_back(
        {module.name + ".lora_B.weight", module.b.data(), site->grad_b().data(), module.b.size()});
  }
  return views;
}

void LoraTrainingModel::zero_gradients() {
  for (auto& site : sites_) {
    std::fill(site->grad_a().begin(), site->grad_a().end(), 0.0f);
    std::fill(site->grad_b().begin(), site->grad_b().end(), 0.0f);
  }
}

LossSum LoraTrainingModel::accumulate_gradients(const Batch& batch, uint64_t step_seed) {
  return run(batch, step_seed, true);
}

LossSum LoraTrainingModel::evaluate(const Batch& batch) {
  return run(batch, 0, false);
}

StepInputs LoraTrainingModel::step_inputs(const Batch& batch, uint64_t seed, bool train) {
  StepInputs step;
  step.batch = batch.rows;
  step.columns = batch.columns;
  step.tokens = batch.rows * batch.columns;
  step.seed = seed;
  step.train = train;
  const size_t count = static_cast<size_t>(step.tokens);
  check(batch.rows > 0 && batch.columns > 0 && batch.ids.size() == count &&
            batch.label_mask.size() == count,
        "training batch: {} ids and {} labels for {} x {} tokens", batch.ids.size(),
        batch.label_mask.size(), batch.rows, batch.columns);
  // Without segment ids: one segment per row, its real tokens (all of them without lengths).
  step.segments = batch.segments;
  if (step.segments.empty()) {
    step.segments.assign(count, 1);
    for (int64_t r = 0; r < batch.rows && !batch.lengths.empty(); ++r) {
      for (int64_t t = batch.lengths.at(r); t < batch.columns; ++t) {
        step.segments[r * batch.columns + t] = 0;
      }
    }
  }
  check(step.segments.size() == count, "training batch: {} segment ids for {} tokens",
        step.segments.size(), count);
  // Positions restart at 0 with each segment.
  step.positions.resize(count);
  int32_t highest = 0;
  for (size_t i = 0; i < count; ++i) {
    check(batch.ids[i] >= 0 && batch.ids[i] < config_.vocab_size,
          "training batch: token id {} is outside the vocabulary (size {})", batch.ids[i],
          config_.vocab_size);
    const bool starts = i % batch.columns == 0 || step.segments[i] != step.segments[i - 1];
    step.positions[i] = starts ? 0 : step.positions[i - 1] + 1;
    highest = std::max(highest, step.positions[i]);
  }
  step.negated_positions.resize(count);
  for (size_t i = 0; i < count; ++i) step.negated_positions[i] = -step.positions[i];
  if (config_.rope.type != RopeType::None) step.inv_freq = rope_.for_length(highest + 1);
  if (weights_.position_embedding.defined()) {
    check(highest < config_.max_position_embeddings,
          "training batch: position {} exceeds the {} learned positions", highest,
          config_.max_position_embeddings);
  }
  return step;
}

void LoraTrainingModel::allocate(LayerActivations& a, int64_t tokens, size_t layer) {
  Backend& b = *backend_;
  const int64_t hidden = config_.hidden_size, inner = config_.intermediate_size;
  a.attention_normed = b.empty({tokens, hidden});
  a.q = b.empty({tokens, config_.q_dim()});
  a.k = b.empty({tokens, config_.kv_dim()});
  a.v = b.empty({tokens, config_.kv_dim()});
  a.attended = b.empty({tokens, config_.q_dim()});
  a.lse = b.empty({tokens, config_.num_heads});
  a.middle = b.empty({tokens, hidden});
  a.mlp_normed = b.empty({tokens, hidden});
  a.gate = weights_.layers[layer].gate.weight.defined() ? b.empty({tokens, inner}) : Tensor();
  a.up = b.empty({tokens, inner});
  a.inner = b.empty({tokens, inner});
  for (int p = 0; p < kProjections; ++p) {
    LoraSite* site = slots_[layer][p].site;
    a.lora_u[p] = Tensor();
    for (int before = 0; before < p && site; ++before) {
      if (slots_[layer][before].site == site) a.lora_u[p] = a.lora_u[before];
    }
    if (site && !a.lora_u[p].defined()) a.lora_u[p] = b.empty({tokens, site->rank()});
  }
}

LossSum LoraTrainingModel::run(const Batch& batch, uint64_t seed, bool backward) {
  const StepInputs step = step_inputs(batch, seed, backward);
  const int64_t tokens = step.tokens;
  const int64_t hidden = config_.hidden_size;
  const size_t layers = weights_.layers.size();
  Backend& b = *backend_;

  TokenTargets targets;
  for (int64_t r = 0; r < batch.rows; ++r) {
    for (int64_t t = 1; t < batch.columns; ++t) {
      const int64_t i = r * batch.columns + t;
      if (!batch.label_mask[i]) continue;
      targets.rows.push_back(i - 1);
      targets.labels.push_back(batch.ids[i]);
    }
  }
  LossSum result;
  result.tokens = static_cast<int64_t>(targets.rows.size());
  if (targets.rows.empty()) return result;

  // inputs[l]: the residual stream entering layer l (inputs[layers]: the final one). Without
  // checkpointing every layer keeps its activations; with it one set is reused.
  std::vector<Tensor> inputs(layers + 1);
  for (auto& input : inputs) input = b.empty({tokens, hidden});
  b.embedding(inputs[0], weights_.token_embedding, batch.ids, false);
  if (weights_.position_embedding.defined()) {
    b.embedding(inputs[0], weights_.position_embedding, step.positions, true);
  }
  const bool keep_all = backward && !options_.grad_checkpoint;
  std::vector<LayerActivations> activations(keep_all ? layers : 1);
  for (size_t l = 0; l < layers; ++l) {
    LayerActivations& a = activations[keep_all ? l : 0];
    allocate(a, tokens, l);
    a.input = inputs[l];
    forward_layer(l, a, inputs[l + 1], step);
  }
  Tensor final_normed = b.empty({tokens, hidden});
  norm(final_normed, inputs[layers], weights_.final_norm);
  Tensor d_final = backward ? b.empty({tokens, hidden}) : Tensor();
  result.loss =
      token_loss(b, final_normed, weights_.lm_head.weight, targets, backward ? &d_final : nullptr);
  if (!backward) return result;

  Tensor d_x = b.zeros({tokens, hidden});
  norm_backward(d_x, d_final, inputs[layers], weights_.final_norm);
  for (size_t l = layers; l-- > lowest_adapted_;) {
    LayerActivations& a = activations[keep_all ? l : 0];
    if (!keep_all) {
      // Recompute the layer from its input; its output (inputs[l + 1]) is no longer needed.
      allocate(a, tokens, l);
      a.input = inputs[l];
      forward_layer(l, a, inputs[l + 1], step);
    }
    backward_layer(l, a, d_x, step, l > lowest_adapted_);
  }
  return result;
}

std::unique_ptr<TrainableModel> make_lora_training_model(const Checkpoint& checkpoint,
                                                         LoraAdapter& adapter,
                                                         const LoraTrainingOptions& options) {
  return std::make_unique<LoraTrainingModel>(checkpoint, adapter, options);
}

}  // namespace flow2
