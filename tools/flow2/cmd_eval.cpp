// flow2 eval --model M [--adapter DIR] --data PATH: mean cross-entropy and perplexity of a
// dataset split's trained tokens (the tokens fine-tuning learns), as the trainer counts them.
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "adapter_option.h"
#include "commands.h"
#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/dataset.h"
#include "flow2/error.h"
#include "flow2/evaluate.h"

namespace flow2::cli {
namespace {

struct EvalArgs {
  std::string model;
  std::string adapter;
  std::string data;
  std::string split = "valid";
  DatasetOptions options;
  int64_t batch_size = 8;
  bool no_mask_prompt = false;
  bool as_json = false;
  std::string backend = "cpu";
};

void run_eval(EvalArgs args) {
  auto start = std::chrono::steady_clock::now();
  Checkpoint checkpoint = open_checkpoint(args.model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  check(tokenizer.has_value(), "{}: no tokenizer.json", args.model);
  TokenizerConfig tokenizer_config = checkpoint_tokenizer_config(checkpoint);
  ChatFormatter formatter(tokenizer_config, checkpoint.config, *tokenizer);
  args.options.eos_ids = end_of_turn_ids(checkpoint.config, tokenizer_config, *tokenizer);
  if (args.no_mask_prompt) args.options.mask_prompt = false;
  Dataset dataset = load_dataset(args.data, *tokenizer, formatter, args.options);
  const DatasetSplit& split = args.split == "train"   ? dataset.train
                              : args.split == "valid" ? dataset.valid
                                                      : dataset.test;
  check(!split.empty(), "{}: the {} split is empty{}", args.data, args.split,
        args.split == "test" ? " (no test.jsonl)" : "");
  auto backend = make_backend(args.backend);
  auto model = load_model(checkpoint, *backend, args.adapter);
  SplitEvaluation result = evaluate_model(*model, split, args.batch_size);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (args.as_json) {
    nlohmann::ordered_json out;
    out["split"] = args.split;
    out["examples"] = result.examples;
    out["tokens"] = result.tokens;
    out["loss"] = result.loss;
    out["perplexity"] = result.perplexity;
    out["seconds"] = seconds;
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("{}: {} examples, {} trained tokens  loss {:.6f}  perplexity {:.4f}  ({:.1f} s)\n",
               args.split, result.examples, result.tokens, result.loss, result.perplexity, seconds);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "eval", "Loss and perplexity of a dataset split's trained tokens (with or without LoRA)");
  auto args = std::make_shared<EvalArgs>();
  command->add_option("--model,-m", args->model, "Model directory or GGUF file")->required();
  add_adapter_option(*command, args->adapter);
  command
      ->add_option("--data", args->data,
                   "A .jsonl file or a directory with train.jsonl [valid.jsonl] [test.jsonl]")
      ->required();
  command->add_option("--split", args->split, "Which split to score")
      ->check(CLI::IsMember({"train", "valid", "test"}))
      ->capture_default_str();
  command->add_option("--max-seq-len", args->options.max_seq_len, "Truncate examples (2048)")
      ->check(CLI::PositiveNumber);
  command->add_option("--batch-size", args->batch_size, "Rows per batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command
      ->add_option("--val-split", args->options.val_split,
                   "Fraction of train held out when there is no valid.jsonl (0.1)")
      ->check(CLI::Range(0.0, 0.999999));
  command->add_option("--seed", args->options.seed, "Seed of the train/valid split (0)");
  command->add_flag("--no-mask-prompt", args->no_mask_prompt,
                    "Score prompt tokens too (chat formats)");
  command->add_option("--backend", args->backend, "cpu")->capture_default_str();
  command->add_flag("--json", args->as_json, "Print one JSON object");
  command->callback([args] { run_eval(*args); });
}

}  // namespace flow2::cli
