// flow2 finetune --model M --data PATH --out DIR: LoRA fine-tuning. Loads the dataset as
// `flow2 dataset` does, creates the adapter (or continues one), trains with AdamW and writes a
// PEFT adapter directory with the training log, checkpoint and summary beside it.
#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "config_options.h"
#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/dataset.h"
#include "flow2/error.h"
#include "flow2/lora.h"
#include "flow2/lora_peft.h"
#include "flow2/lora_training.h"
#include "flow2/model.h"
#include "flow2/progress_bar.h"
#include "flow2/training.h"

namespace flow2::cli {
namespace {

struct FinetuneArgs {
  std::string model;
  std::string data;
  std::string out;
  std::string config;
  LoraConfig lora;
  std::string resume_adapter;
  bool grad_checkpoint = false;
  DatasetOptions dataset;
  bool mask_prompt = true;
  TrainingOptions training;
  std::string schedule = "constant";
  std::string progress = "auto";
  bool as_json = false;
};

// PEFT's defaults for the families flow2 runs when --targets is not given.
std::vector<std::string> default_targets(const ModelConfig& config) {
  if (config.family == ModelFamily::Gpt2) return {"c_attn"};
  return {"q_proj", "v_proj"};
}

int64_t model_parameter_count(const Checkpoint& checkpoint) {
  int64_t count = 0;
  for (const auto& [name, tensor] : checkpoint.weights.tensors()) count += tensor.numel();
  return count;
}

// The adapter to train: a fresh one (PEFT's initialization, seeded), or the values of an
// existing PEFT directory with its own settings.
LoraAdapter starting_adapter(const FinetuneArgs& args, const Checkpoint& checkpoint) {
  if (!args.resume_adapter.empty()) {
    return read_peft_adapter(args.resume_adapter, checkpoint.config);
  }
  LoraConfig config = args.lora;
  if (config.targets.empty()) config.targets = default_targets(checkpoint.config);
  return init_lora_adapter(config, checkpoint.config, args.training.seed);
}

nlohmann::json lora_json(const LoraConfig& config) {
  return {{"rank", config.rank},       {"alpha", config.alpha},
          {"dropout", config.dropout}, {"rslora", config.rslora},
          {"targets", config.targets}, {"num_layers", config.num_layers}};
}

void print_summary(const TrainingSummary& summary, const std::string& out) {
  fmt::print("trained {} steps in {:.1f} s ({:.1f} samples/s, {:.0f} tokens/s)\n", summary.steps,
             summary.seconds, summary.samples_per_s, summary.tokens_per_s);
  fmt::print("trainable parameters {} ({:.3f}% of {})\n", summary.trainable_parameters,
             100.0 * summary.trainable_share,
             summary.model_parameters + summary.trainable_parameters);
  fmt::print("final train loss {:.4f}", summary.final_loss);
  if (summary.final_eval) {
    fmt::print(", val loss {:.4f}, val perplexity {:.3f}", summary.final_eval->loss,
               summary.final_eval->perplexity);
  }
  fmt::print("\nadapter written to {}\n", out);
}

void run_finetune(FinetuneArgs args) {
  check(!args.model.empty() && !args.data.empty() && !args.out.empty(),
        "finetune needs --model, --data and --out (on the command line or in --config)");
  Checkpoint checkpoint = open_checkpoint(args.model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  check(tokenizer.has_value(), "{}: no tokenizer.json to tokenize the dataset with", args.model);
  TokenizerConfig tokenizer_config = checkpoint_tokenizer_config(checkpoint);
  ChatFormatter formatter(tokenizer_config, checkpoint.config, *tokenizer);
  args.dataset.eos_ids = end_of_turn_ids(checkpoint.config, tokenizer_config, *tokenizer);
  args.dataset.seed = args.training.seed;
  args.dataset.mask_prompt = args.mask_prompt;
  Dataset dataset = load_dataset(args.data, *tokenizer, formatter, args.dataset);

  LoraAdapter adapter = starting_adapter(args, checkpoint);
  adapter.base_model = args.model;
  auto trainable =
      make_lora_training_model(checkpoint, adapter, {.grad_checkpoint = args.grad_checkpoint});

  TrainingOptions& training = args.training;
  training.schedule = parse_lr_schedule(args.schedule);
  training.pad_id = args.dataset.eos_ids.empty() ? 0 : args.dataset.eos_ids.front();
  training.output_dir = args.out;
  training.model_parameters = model_parameter_count(checkpoint);
  training.fingerprint = {{"model", args.model},
                          {"data", args.data},
                          {"max_seq_len", args.dataset.max_seq_len},
                          {"val_split", args.dataset.val_split},
                          {"mask_prompt", args.mask_prompt},
                          {"resume_adapter", args.resume_adapter},
                          {"lora", lora_json(adapter.config)}};

  ProgressBar progress(stderr, parse_progress_style(args.progress, isatty(STDERR_FILENO) != 0));
  TrainingCallbacks callbacks;
  callbacks.on_step = [&](const StepRecord& record) {
    progress.step(record);
    return true;
  };
  callbacks.on_eval = [&](int64_t step, const EvalResult& eval) { progress.eval(step, eval); };
  // Each checkpoint also leaves a loadable adapter, so an interrupted run is usable.
  callbacks.on_save = [&](int64_t) { write_peft_adapter(adapter, checkpoint.config, args.out); };
  TrainingSummary summary = train(*trainable, dataset, training, callbacks);
  progress.finish();
  write_peft_adapter(adapter, checkpoint.config, args.out);
  if (args.as_json) {
    nlohmann::ordered_json out = summary_json(summary);
    out["adapter"] = args.out;
    out["lora"] = lora_json(adapter.config);
    fmt::print("{}\n", out.dump(2));
  } else {
    print_summary(summary, args.out);
  }
}

}  // namespace

void add_finetune_command(CLI::App& app) {
  auto* command = app.add_subcommand("finetune", "Fine-tune a LoRA adapter on a JSONL dataset");
  auto args = std::make_shared<FinetuneArgs>();
  // Required, but checked after --config has had its say.
  command->add_option("--model,-m", args->model, "Model directory or .gguf");
  command->add_option("--data", args->data,
                      "A .jsonl file or a directory with train.jsonl [valid.jsonl]");
  command->add_option("--out,-o", args->out,
                      "Output directory: the PEFT adapter, train_log.jsonl, train_summary.json, "
                      "training_state.safetensors");
  command->add_option("--config", args->config,
                      "Options from a .json or .yaml file (the command line wins)");
  command
      ->add_option("--targets", args->lora.targets,
                   "Modules to adapt (q_proj,v_proj; GPT-2: c_attn; or all-linear)")
      ->delimiter(',');
  command->add_option("--rank", args->lora.rank, "LoRA rank (8)")->check(CLI::PositiveNumber);
  command->add_option("--alpha", args->lora.alpha, "LoRA alpha (16)");
  command->add_option("--dropout", args->lora.dropout, "LoRA dropout (0)")
      ->check(CLI::Range(0.0, 0.999));
  command->add_flag("--rslora", args->lora.rslora, "Scale by alpha / sqrt(rank)");
  command->add_option("--num-layers", args->lora.num_layers, "Adapt only the last N layers");
  command->add_option("--resume-adapter", args->resume_adapter,
                      "Start from this PEFT adapter directory (its settings replace the LoRA "
                      "flags)");
  command->add_flag("--grad-checkpoint", args->grad_checkpoint,
                    "Recompute each layer in backward (less memory)");
  command->add_option("--learning-rate,--lr", args->training.learning_rate, "(1e-4)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--schedule", args->schedule, "constant, linear or cosine (constant)");
  command->add_option("--warmup", args->training.warmup, "Linear warmup steps (0)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--weight-decay", args->training.adamw.weight_decay, "AdamW (0)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--max-grad-norm", args->training.max_grad_norm, "Clip (1.0; 0: off)")
      ->check(CLI::NonNegativeNumber);
  auto* epochs = command->add_option("--epochs", args->training.epochs, "Passes over train (1)")
                     ->check(CLI::PositiveNumber);
  command->add_option("--iters", args->training.iters, "Optimizer steps (instead of --epochs)")
      ->check(CLI::PositiveNumber)
      ->excludes(epochs);
  command->add_option("--batch-size", args->training.batch_size, "Rows per micro-batch (4)")
      ->check(CLI::PositiveNumber);
  command->add_option("--grad-accum", args->training.grad_accum, "Micro-batches per step (1)")
      ->check(CLI::PositiveNumber);
  command->add_flag("--pack", args->training.pack, "Pack several examples into a row");
  command->add_option("--max-seq-len", args->dataset.max_seq_len, "Truncate examples (2048)")
      ->check(CLI::PositiveNumber);
  command->add_flag("--mask-prompt,!--no-mask-prompt", args->mask_prompt,
                    "Train on assistant tokens only (default) or on everything");
  command
      ->add_option("--val-split", args->dataset.val_split,
                   "Fraction of train held out without valid.jsonl (0.1)")
      ->check(CLI::Range(0.0, 0.999999));
  command->add_flag("--skip-invalid", args->dataset.skip_invalid,
                    "Drop invalid lines instead of failing");
  command->add_option("--eval-every", args->training.eval_every,
                      "Validate every N steps (and at the end)");
  command->add_option("--save-every", args->training.save_every,
                      "Checkpoint (and write the adapter) every N steps");
  command->add_flag("--resume", args->training.resume,
                    "Continue from --out's training_state.safetensors (same flags)");
  command->add_option("--seed", args->training.seed, "Adapter init, split, batches, dropout (0)");
  command->add_option("--progress", args->progress, "auto, bar, lines or off (auto)");
  command->add_flag("--json", args->as_json, "Print the summary as JSON");
  command->callback([command, args] {
    if (!args->config.empty()) apply_config_file(*command, args->config);
    run_finetune(*args);
  });
}

}  // namespace flow2::cli
