// The fine-tuning section's numbers: a short LoRA run (rank 8 on the attention's query and value
// projections, PEFT's initialization) on the report's dataset. Builds without the trainer
// (FLOW2_HAVE_TRAINER unset, or its headers missing) record "not measured" instead.
#include "report/stages.h"

#if defined(FLOW2_HAVE_TRAINER) && __has_include("flow2/training.h") && \
                                                 __has_include("flow2/lora_training.h")
#define FLOW2_REPORT_TRAINS 1
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/dataset.h"
#include "flow2/error.h"
#include "flow2/lora_training.h"
#include "flow2/model.h"
#include "flow2/training.h"
#endif

namespace flow2::report {

#ifdef FLOW2_REPORT_TRAINS
namespace {

// A fresh adapter as PEFT initializes one: A uniform in +-1/sqrt(in) (kaiming_uniform with
// a = sqrt(5)), B zero, so training starts from the base model.
LoraAdapter fresh_adapter(const ModelConfig& c, uint64_t seed) {
  LoraAdapter adapter;
  adapter.config.rank = 8;
  adapter.config.alpha = 16;
  std::mt19937_64 rng(seed);
  const bool gpt2 = c.model_type == "gpt2";
  adapter.config.targets =
      gpt2 ? std::vector<std::string>{"c_attn"} : std::vector<std::string>{"q_proj", "v_proj"};
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    std::vector<std::pair<std::string, int64_t>> sites;
    if (gpt2) {
      sites = {{"attn.c_attn", 3 * c.hidden_size}};
    } else {
      sites = {{"self_attn.q_proj", c.q_dim()}, {"self_attn.v_proj", c.kv_dim()}};
    }
    for (const auto& [target, out] : sites) {
      LoraModule module;
      module.layer = layer;
      module.target = target;
      module.name = gpt2 ? fmt::format("base_model.model.transformer.h.{}.{}", layer, target)
                         : fmt::format("base_model.model.model.layers.{}.{}", layer, target);
      module.in = c.hidden_size;
      module.out = out;
      const float bound = 1.0f / std::sqrt(static_cast<float>(module.in));
      std::uniform_real_distribution<float> uniform(-bound, bound);
      module.a.resize(static_cast<size_t>(adapter.config.rank * module.in));
      for (float& value : module.a) value = uniform(rng);
      module.b.assign(static_cast<size_t>(module.out * adapter.config.rank), 0.0f);
      adapter.modules.push_back(std::move(module));
    }
  }
  return adapter;
}

Json eval_json(const EvalResult& eval) {
  return {{"loss", eval.loss}, {"perplexity", eval.perplexity}, {"tokens", eval.tokens}};
}

}  // namespace

Json finetune_stage(const std::filesystem::path& model, const ReportOptions& options) {
  const int64_t steps = options.finetune_steps;
  const int64_t seq_len = options.finetune_seq_len;
  Checkpoint checkpoint = open_checkpoint(model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  check(tokenizer.has_value(), "{}: no tokenizer to tokenize the dataset with", model.string());
  TokenizerConfig tokenizer_config = checkpoint_tokenizer_config(checkpoint);
  ChatFormatter formatter(tokenizer_config, checkpoint.config, *tokenizer);
  DatasetOptions dataset_options;
  dataset_options.max_seq_len = seq_len;
  dataset_options.seed = options.seed;
  dataset_options.skip_invalid = true;
  dataset_options.eos_ids = end_of_turn_ids(checkpoint.config, tokenizer_config, *tokenizer);
  Dataset dataset = load_dataset(options.data, *tokenizer, formatter, dataset_options);
  check(!dataset.train.empty(), "{}: no training examples", options.data.string());

  int64_t parameters = 0;
  for (const auto& [name, tensor] : checkpoint.weights.tensors()) parameters += tensor.numel();
  LoraAdapter adapter = fresh_adapter(checkpoint.config, options.seed);
  auto trainable = make_lora_training_model(checkpoint, adapter, {});

  TrainingOptions training;
  training.iters = steps;
  training.batch_size = options.finetune_batch;
  training.learning_rate = 5e-4;
  training.seed = options.seed;
  training.pad_id = dataset_options.eos_ids.empty() ? 0 : dataset_options.eos_ids.front();
  training.model_parameters = parameters;

  Json out;
  out["status"] = "ok";
  out["model"] = model.string();
  out["config"] = {{"method", "LoRA"},
                   {"rank", adapter.config.rank},
                   {"alpha", adapter.config.alpha},
                   {"targets", adapter.config.targets},
                   {"layers", checkpoint.config.num_layers},
                   {"steps", steps},
                   {"batch_size", training.batch_size},
                   {"max_seq_len", seq_len},
                   {"learning_rate", training.learning_rate},
                   {"optimizer", "AdamW"}};
  out["train_examples"] = dataset.train.examples.size();
  int64_t train_tokens = 0;
  for (const auto& example : dataset.train.examples) train_tokens += example.tokens.size();
  out["train_tokens_per_epoch"] = train_tokens;
  if (!dataset.valid.empty()) {
    if (options.progress) options.progress({"validation loss before training", 0, steps});
    out["initial_eval"] =
        eval_json(evaluate_split(*trainable, dataset.valid, training.batch_size, training.pad_id));
  }
  Json curve = Json::array();
  TrainingCallbacks callbacks;
  callbacks.on_step = [&](const StepRecord& record) {
    curve.push_back({{"step", record.step},
                     {"loss", record.loss},
                     {"learning_rate", record.learning_rate},
                     {"grad_norm", record.grad_norm},
                     {"tokens", record.tokens},
                     {"tokens_per_s", record.tokens_per_s},
                     {"elapsed_s", record.elapsed_s}});
    if (options.progress) {
      options.progress({fmt::format("step {}/{} loss {:.4f} ({:.0f} tok/s)", record.step,
                                    record.total_steps, record.loss, record.tokens_per_s),
                        record.step, record.total_steps});
    }
    return true;
  };
  TrainingSummary summary = train(*trainable, dataset, training, callbacks);
  out["summary"] = summary_json(summary);
  if (summary.final_eval) out["final_eval"] = eval_json(*summary.final_eval);
  out["loss_curve"] = curve;
  return out;
}

#else

Json finetune_stage(const std::filesystem::path&, const ReportOptions&) {
  return Json{{"status", "not measured"},
              {"reason",
               "this build of flow2 has no LoRA trainer (flow2/training.h and "
               "flow2/lora_training.h are not part of it yet)"}};
}

#endif

}  // namespace flow2::report
