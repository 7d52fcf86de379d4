// flow2 report --model M [--model M2 ...] --data PATH: the whole analysis as report.md,
// report.html and results.json. Exits 1 (after writing every file) when a stage the user asked
// for failed; stages that could not run here (no trainer, a peer not installed, no GPU
// backend) are reported as not measured and do not fail the command. Progress goes to stderr: a
// bar per stage on a terminal, one "report: ..." line per step otherwise.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "flow2/error.h"
#include "flow2/progress_bar.h"
#include "flow2/report.h"
#include "peer_options.h"

namespace flow2::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> models;
  std::string data;
  std::string out = "flow2-report";
  std::string device = "auto";
  std::string progress = "auto";
  ReportOptions options;
};

void run_report_command(ReportArgs args) {
  for (const auto& model : args.models) args.options.models.emplace_back(model);
  args.options.data = args.data;
  args.options.out = args.out;
  if (args.device != "auto") args.options.backends = {args.device};
  ProgressBar bar(stderr, parse_progress_style(args.progress, isatty(STDERR_FILENO) != 0));
  args.options.progress = [&bar](const ProgressEvent& event) { bar.update(event, "report: "); };
  ReportOutcome outcome = run_report(args.options);
  bar.finish();
  fmt::print("{}\n{}\n{}\n", outcome.markdown.string(), outcome.html.string(),
             outcome.json.string());
  if (!outcome.failed.empty()) {
    fail("{} stage(s) failed: {} (the report and results.json keep everything else; see {})",
         outcome.failed.size(), fmt::join(outcome.failed, ", "), outcome.markdown.string());
  }
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "report", "Benchmark, fine-tune and analyse models and data; write report.md/.html/.json");
  auto args = std::make_shared<ReportArgs>();
  command->add_option("--model,-m", args->models, "Model directory or GGUF file (repeatable)")
      ->required();
  command->add_option("--data", args->data, "Dataset: a .jsonl file or a directory");
  command->add_option("--out", args->out, "Output directory")->capture_default_str();
  command->add_flag("--quick", args->options.quick,
                    "Fewer repetitions, shorter prompts and a shorter fine-tune");
  add_peer_options(*command, args->options.compare, args->options.peers);
  command->add_option("--device", args->device, "cpu, cuda or auto (every backend)")
      ->capture_default_str();
  command->add_option("--prompt-tokens", args->options.prompt_tokens, "Prompt length (pp)")
      ->check(CLI::PositiveNumber);
  command->add_option("--gen-tokens", args->options.gen_tokens, "Generated tokens (tg)")
      ->check(CLI::PositiveNumber);
  command->add_option("--reps", args->options.reps, "Repetitions")->check(CLI::PositiveNumber);
  command->add_option("--max-seq-len", args->options.max_seq_len, "Dataset truncation")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--finetune-steps", args->options.finetune_steps,
                      "LoRA steps (-1: no fine-tuning)");
  command
      ->add_option("--finetune-seq-len", args->options.finetune_seq_len, "Fine-tuning truncation")
      ->check(CLI::PositiveNumber);
  command->add_option("--seed", args->options.seed, "Seed of prompts, split and LoRA init");
  command
      ->add_option("--progress", args->progress,
                   "auto (a bar on a terminal, lines otherwise), bar, lines or off")
      ->check(CLI::IsMember({"auto", "bar", "lines", "off"}))
      ->capture_default_str();
  command->callback([args] { run_report_command(*args); });
}

}  // namespace flow2::cli
