// flow2 dataset --model M --data PATH: loads a fine-tuning dataset as training would (chat
// template, tokenizer, truncation, split) and prints its statistics or every bad line.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/dataset.h"
#include "flow2/dataset_stats.h"
#include "flow2/error.h"
#include "flow2/model.h"

namespace flow2::cli {
namespace {

struct DatasetArgs {
  std::string model;
  std::string data;
  DatasetOptions options;
  bool no_mask_prompt = false;
  bool as_json = false;
};

void print_stats(const DatasetStats& stats) {
  fmt::print("max_seq_len {}\n", stats.max_seq_len);
  for (const auto& split : stats.splits) {
    fmt::print("\n{}: {} examples, {}, from {}{}\n", split.name, split.examples, split.format,
               split.source, split.from_val_split ? " (val_split)" : "");
    fmt::print("  tokens  min {}  mean {:.1f}  median {:.1f}  p95 {:.1f}  max {}\n",
               split.lengths.min, split.lengths.mean, split.lengths.median, split.lengths.p95,
               split.lengths.max);
    fmt::print("  truncated {}  total tokens {}  trained tokens {}", split.truncated, split.tokens,
               split.trained_tokens);
    if (split.without_targets > 0) {
      fmt::print("  without trained tokens {}", split.without_targets);
    }
    fmt::print("\n");
    if (!split.skipped.empty()) {
      fmt::print("  skipped {} invalid line{}:\n", split.skipped.size(),
                 split.skipped.size() == 1 ? "" : "s");
      for (const auto& issue : split.skipped) {
        fmt::print("    {}:{}: {}\n", issue.file.string(), issue.line, issue.message);
      }
    }
  }
  if (stats.boundary_merges > 0) {
    fmt::print("\n{} assistant turn boundaries fell inside a token (trained on)\n",
               stats.boundary_merges);
  }
}

void run_dataset(DatasetArgs args) {
  Checkpoint checkpoint = open_checkpoint(args.model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  check(tokenizer.has_value(), "{}: no tokenizer.json", args.model);
  TokenizerConfig tokenizer_config = checkpoint_tokenizer_config(checkpoint);
  ChatFormatter formatter(tokenizer_config, checkpoint.config, *tokenizer);
  args.options.eos_ids = end_of_turn_ids(checkpoint.config, tokenizer_config, *tokenizer);
  if (args.no_mask_prompt) args.options.mask_prompt = false;
  Dataset dataset = load_dataset(args.data, *tokenizer, formatter, args.options);
  DatasetStats stats = dataset_stats(dataset);
  if (args.as_json) {
    fmt::print("{}\n", stats_json(stats).dump(2));
  } else {
    print_stats(stats);
  }
}

}  // namespace

void add_dataset_command(CLI::App& app) {
  auto* command =
      app.add_subcommand("dataset", "Load a fine-tuning dataset and print its statistics");
  auto args = std::make_shared<DatasetArgs>();
  command->add_option("--model,-m", args->model, "Model directory or .gguf (tokenizer, template)")
      ->required();
  command
      ->add_option("--data", args->data,
                   "A .jsonl file or a directory with train.jsonl [valid.jsonl] [test.jsonl]")
      ->required();
  command->add_option("--max-seq-len", args->options.max_seq_len, "Truncate examples (2048)")
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--val-split", args->options.val_split,
                   "Fraction of train held out when there is no valid.jsonl (0.1)")
      ->check(CLI::Range(0.0, 0.999999));
  command->add_option("--seed", args->options.seed, "Seed of the split (0)");
  command->add_flag("--skip-invalid", args->options.skip_invalid,
                    "Drop invalid lines (listed) instead of failing");
  command->add_flag("--no-mask-prompt", args->no_mask_prompt,
                    "Train on prompt tokens too (chat formats)");
  command->add_flag("--json", args->as_json, "Print JSON");
  command->callback([args] { run_dataset(*args); });
}

}  // namespace flow2::cli
