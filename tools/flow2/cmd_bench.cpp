// flow2 bench --model M [--model M2 ...]: load time, memory, prompt and generation speed per
// model and backend, mean ± sd over the repetitions (llama-bench's pp512 / tg128). Progress goes
// to stderr: a bar per model and backend on a terminal, one "bench: ..." line per step otherwise.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "flow2/benchmark.h"
#include "flow2/progress_bar.h"

namespace flow2::cli {
namespace {

struct BenchArgs {
  std::vector<std::string> models;
  std::string device = "auto";
  std::string progress = "auto";
  BenchmarkOptions options;
  bool as_json = false;
};

std::string mean_sd(const Measurement& m, int digits) {
  return fmt::format("{:.{}f} ± {:.{}f}", m.mean, digits, m.sd, digits);
}

void print_table(const BenchmarkResult& result) {
  const std::string pp = fmt::format("pp{} tok/s", result.prompt_tokens);
  const std::string tg = fmt::format("tg{} tok/s", result.gen_tokens);
  fmt::print("{:<28} {:<7} {:>9} {:>9} {:<6} {:>8} {:>15} {:>9} {:>15} {:>17} {:>17}\n", "model",
             "backend", "size MB", "params M", "dtype", "cold s", "warm load s", "peak MB",
             "ttft s", pp, tg);
  for (const auto& model : result.models) {
    const ModelSummary& s = model.model;
    for (const auto& b : model.backends) {
      std::string head = fmt::format("{:<28} {:<7} {:>9.1f} {:>9.2f} {:<6}", s.name, b.backend,
                                     s.bytes_on_disk / 1e6, s.parameters / 1e6, s.dtype);
      if (!b.measured) {
        fmt::print("{} not measured: {}\n", head, b.not_measured);
        continue;
      }
      fmt::print("{} {:>8.3f} {:>15} {:>9.1f} {:>15} {:>17} {:>17}\n", head, b.cold_load_s,
                 mean_sd(b.warm_load_s, 3), b.peak_rss_bytes / 1e6, mean_sd(b.ttft_s, 3),
                 mean_sd(b.prompt_tok_s, 1), mean_sd(b.gen_tok_s, 1));
    }
  }
  fmt::print("{} repetitions, {} threads, seed {}\n", result.reps, result.threads, result.seed);
  for (const auto& model : result.models) {
    for (const auto& b : model.backends) {
      if (b.measured && !b.page_cache.dropped) {
        fmt::print(
            "note: {}: the page cache still held {:.1f} MB of the files before the cold "
            "load{}{}\n",
            model.model.name, b.page_cache.resident_after_bytes / 1e6,
            b.page_cache.error.empty() ? "" : ": ", b.page_cache.error);
      }
    }
  }
}

void run_bench(BenchArgs args) {
  for (const auto& model : args.models) args.options.models.emplace_back(model);
  if (args.device != "auto") args.options.backends = {args.device};
  ProgressBar bar(stderr, parse_progress_style(args.progress, isatty(STDERR_FILENO) != 0));
  args.options.progress = [&bar](const ProgressEvent& event) { bar.update(event, "bench: "); };
  BenchmarkResult result = run_benchmark(args.options);
  bar.finish();
  if (args.as_json) {
    fmt::print("{}\n", benchmark_json(result).dump(2));
  } else {
    print_table(result);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "bench", "Measure load time, memory, prompt and generation speed of models");
  auto args = std::make_shared<BenchArgs>();
  command->add_option("--model,-m", args->models, "Model directory or GGUF file (repeatable)")
      ->required();
  command->add_option("--device", args->device, "cpu, cuda or auto (every backend)")
      ->capture_default_str();
  command->add_option("--prompt-tokens", args->options.prompt_tokens, "Prompt length (pp)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--gen-tokens", args->options.gen_tokens, "Generated tokens (tg)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command->add_option("--reps", args->options.reps, "Repetitions")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--seed", args->options.seed, "Seed of the random prompt ids")
      ->capture_default_str();
  command->add_flag("--json", args->as_json, "Print JSON");
  command
      ->add_option("--progress", args->progress,
                   "auto (a bar on a terminal, lines otherwise), bar, lines or off")
      ->check(CLI::IsMember({"auto", "bar", "lines", "off"}))
      ->capture_default_str();
  command->callback([args] { run_bench(*args); });
}

}  // namespace flow2::cli
