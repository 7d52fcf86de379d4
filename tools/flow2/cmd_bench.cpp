// flow2 bench --model M [--model M2 ...]: load time, memory, prompt and generation speed per
// model and backend, mean ± sd over the repetitions (llama-bench's pp512 / tg128). With
// --compare llama.cpp / transformers the peers run with the same sizes on the same models and
// their rows follow flow2's in the table (labelled by framework and version) and in --json's
// "peers"; a peer that is not installed is "not measured", one that fails exits 1 after the
// output. Progress goes to stderr: a bar per model and backend on a terminal, one "bench: ..."
// line per step otherwise.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "flow2/benchmark.h"
#include "flow2/error.h"
#include "flow2/progress_bar.h"
#include "peer_options.h"

namespace flow2::cli {
namespace {

struct BenchArgs {
  std::vector<std::string> models;
  std::string device = "auto";
  std::string progress = "auto";
  std::vector<std::string> compare;  // peers: "llama.cpp", "transformers"
  PeerOptions peers;
  BenchmarkOptions options;
  bool as_json = false;
};

using Json = nlohmann::ordered_json;

std::string mean_sd(double mean, double sd, int digits) {
  return fmt::format("{:.{}f} ± {:.{}f}", mean, digits, sd, digits);
}

std::string mean_sd(const Measurement& m, int digits) {
  return mean_sd(m.mean, m.sd, digits);
}

// A peer's {"mean", "sd", ...} as "mean ± sd", or "n/a" where the peer does not measure it.
std::string mean_sd(const Json& peer, const char* key, int digits) {
  if (!peer.contains(key) || !peer[key].is_object()) return "n/a";
  return mean_sd(peer[key].value("mean", 0.0), peer[key].value("sd", 0.0), digits);
}

// A peer's number scaled and printed with `digits`, or "n/a".
std::string number(const Json& peer, const char* key, double scale, int digits) {
  if (!peer.contains(key) || !peer[key].is_number()) return "n/a";
  return fmt::format("{:.{}f}", peer[key].get<double>() * scale, digits);
}

// "llama.cpp llama-bench 0c1e570 (cpu)": who ran the row and where; the peer's name when it did
// not run.
std::string peer_label(const Json& peer) {
  std::string label = peer.value("framework", peer.value("peer", std::string("peer")));
  const std::string device = peer.value("device", "");
  return device.empty() ? label : label + " (" + device + ")";
}

void print_table(const BenchmarkResult& result, const Json& peers) {
  const std::string pp = fmt::format("pp{} tok/s", result.prompt_tokens);
  const std::string tg = fmt::format("tg{} tok/s", result.gen_tokens);
  size_t width = 7;  // the backend column also names the peers
  for (const auto& peer : peers) width = std::max(width, peer_label(peer).size());
  fmt::print("{:<28} {:<{}} {:>9} {:>9} {:<7} {:>8} {:>15} {:>9} {:>15} {:>17} {:>17}\n", "model",
             "backend", width, "size MB", "params M", "dtype", "cold s", "warm load s", "peak MB",
             "ttft s", pp, tg);
  for (const auto& model : result.models) {
    const ModelSummary& s = model.model;
    auto head = [&](const std::string& backend, const std::string& dtype) {
      return fmt::format("{:<28} {:<{}} {:>9.1f} {:>9.2f} {:<7}", s.name, backend, width,
                         s.bytes_on_disk / 1e6, s.parameters / 1e6, dtype);
    };
    for (const auto& b : model.backends) {
      if (!b.measured) {
        fmt::print("{} not measured: {}\n", head(b.backend, s.dtype), b.not_measured);
        continue;
      }
      fmt::print("{} {:>8.3f} {:>15} {:>9.1f} {:>15} {:>17} {:>17}\n", head(b.backend, s.dtype),
                 b.cold_load_s, mean_sd(b.warm_load_s, 3), b.peak_rss_bytes / 1e6,
                 mean_sd(b.ttft_s, 3), mean_sd(b.prompt_tok_s, 1), mean_sd(b.gen_tok_s, 1));
    }
    for (const auto& peer : peers) {
      if (peer.value("model", "") != s.name) continue;
      // Size and parameters are the file's; the dtype is the peer's where it converts
      // (transformers).
      const std::string row = head(peer_label(peer), peer.value("dtype", s.dtype));
      const std::string status = peer.value("status", "");
      if (status != "ok") {
        fmt::print("{} {}: {}\n", row, status,
                   peer.value(status == "failed" ? "error" : "reason", ""));
        continue;
      }
      fmt::print("{} {:>8} {:>15} {:>9} {:>15} {:>17} {:>17}\n", row,
                 number(peer, "cold_load_s", 1, 3), mean_sd(peer, "warm_load_s", 3),
                 number(peer, "peak_rss_bytes", 1e-6, 1), mean_sd(peer, "ttft_s", 3),
                 mean_sd(peer, "prompt_tok_s", 1), mean_sd(peer, "gen_tok_s", 1));
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

// Every peer on every model, with the benchmark's sizes: one entry each (see measure_peer).
Json measure_peers(const BenchArgs& args, ProgressBar& bar) {
  PeerOptions options = args.peers;
  options.prompt_tokens = args.options.prompt_tokens;
  options.gen_tokens = args.options.gen_tokens;
  options.reps = args.options.reps;
  options.seed = args.options.seed;
  Json peers = Json::array();
  const auto total = static_cast<int64_t>(args.compare.size() * args.options.models.size());
  for (const auto& peer : args.compare) {
    for (const auto& model : args.options.models) {
      bar.update({fmt::format("peer {}/{} {} {}", peers.size() + 1, total, peer,
                              model.filename().string()),
                  static_cast<int64_t>(peers.size()), total},
                 "bench: ");
      peers.push_back(measure_peer(peer, model, options));
    }
  }
  return peers;
}

void run_bench(BenchArgs args) {
  for (const auto& model : args.models) args.options.models.emplace_back(model);
  if (args.device != "auto") args.options.backends = {args.device};
  for (const auto& peer : args.compare) check_peer_name(peer);
  ProgressBar bar(stderr, parse_progress_style(args.progress, isatty(STDERR_FILENO) != 0));
  args.options.progress = [&bar](const ProgressEvent& event) { bar.update(event, "bench: "); };
  BenchmarkResult result = run_benchmark(args.options);
  const Json peers = measure_peers(args, bar);
  bar.finish();
  if (args.as_json) {
    Json out = benchmark_json(result);
    if (!args.compare.empty()) out["peers"] = peers;
    fmt::print("{}\n", out.dump(2));
  } else {
    print_table(result, peers);
  }
  std::vector<std::string> failed;
  for (const auto& peer : peers) {
    if (peer.value("status", "") == "failed") {
      failed.push_back(peer.value("peer", "") + " " + peer.value("model", ""));
    }
  }
  check(failed.empty(), "peer(s) failed: {} (their errors are in the output above)",
        fmt::join(failed, ", "));
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
  add_peer_options(*command, args->compare, args->peers);
  command->add_flag("--json", args->as_json, "Print JSON");
  command
      ->add_option("--progress", args->progress,
                   "auto (a bar on a terminal, lines otherwise), bar, lines or off")
      ->check(CLI::IsMember({"auto", "bar", "lines", "off"}))
      ->capture_default_str();
  command->callback([args] { run_bench(*args); });
}

}  // namespace flow2::cli
