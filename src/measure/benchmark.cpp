// run_benchmark: loads each model on each backend and times prefill and decode as llama-bench
// does (pp: a fresh cache and N prompt tokens; tg: a fresh cache and N single-token steps).
#include <omp.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include <fmt/format.h>

#include "flow2/backend.h"
#include "flow2/backend_registry.h"
#include "flow2/benchmark.h"
#include "flow2/error.h"
#include "flow2/generate.h"
#include "flow2/model.h"
#include "measure/page_cache.h"
#include "measure/process_memory.h"

namespace flow2 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<int32_t> random_ids(int64_t count, int64_t vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (auto& id : ids) id = static_cast<int32_t>(pick(rng));
  return ids;
}

struct Loaded {
  std::unique_ptr<Model> model;
  double seconds = 0;
};

// Load time is what a command pays before its first forward: open (headers, mappings) and bind
// the weights on the backend.
Loaded load(const std::filesystem::path& path, Backend& backend) {
  auto start = Clock::now();
  Checkpoint checkpoint = open_checkpoint(path);
  auto model = Model::load(checkpoint, backend);
  return {std::move(model), seconds_since(start)};
}

struct Pass {
  double prompt_s = 0, ttft_s = 0, gen_s = 0;
};

// One repetition: pp (prefill of `prompt`, then the first token chosen: ttft) and tg (decode
// of gen_steps tokens after a one-token start, each step's greedy token fed back, in a cache of
// gen_tokens + 1 rows).
Pass run_pass(Model& model, const std::vector<int32_t>& prompt, int64_t gen_tokens,
              int64_t gen_steps) {
  Pass pass;
  {
    auto cache = model.make_cache(1, static_cast<int64_t>(prompt.size()));
    auto start = Clock::now();
    Tensor logits = model.forward(prompt, 1, cache, LogitRows::Last);
    // A GPU backend returns from forward with the work queued; the read-back waits for it.
    std::vector<float> host = model.backend().to_host(logits);
    pass.prompt_s = seconds_since(start);
    argmax(host);
    pass.ttft_s = seconds_since(start);
  }
  if (gen_steps > 0) {
    auto cache = model.make_cache(1, gen_tokens + 1);
    auto start = Clock::now();
    // Greedy, chosen where the logits are, as generate decodes (on a GPU a step ahead of the
    // host: reading each token back before recording the next step idles the GPU meanwhile).
    decode_greedy(model, cache, prompt.front(), gen_steps);
    pass.gen_s = seconds_since(start);
  }
  return pass;
}

std::vector<double> rates(int64_t tokens, const std::vector<double>& seconds) {
  std::vector<double> out;
  for (double s : seconds) out.push_back(s > 0 ? static_cast<double>(tokens) / s : 0.0);
  return out;
}

// Progress of one model on one backend: the cold load, the warm loads, the warm-up pass and the
// timed passes are its units.
class TaskProgress {
 public:
  TaskProgress(const BenchmarkOptions& options, std::string task)
      : options_(options), task_(std::move(task)), total_(2 * options.reps + 2) {}
  // Starts the next unit.
  void next(const std::string& what) {
    if (options_.progress) options_.progress({task_ + ": " + what, done_, total_});
    ++done_;
  }
  void finished(const std::string& what) {
    if (options_.progress) options_.progress({task_ + ": " + what, total_, total_});
  }

 private:
  const BenchmarkOptions& options_;
  std::string task_;
  int64_t total_;
  int64_t done_ = 0;
};

BackendBenchmark run_on_backend(const BenchmarkOptions& options, const std::string& label,
                                const std::filesystem::path& path, const ModelSummary& summary,
                                const std::string& backend_name, bool first_load) {
  BackendBenchmark result;
  result.backend = backend_name;
  std::unique_ptr<Backend> backend = make_backend(backend_name);
  result.page_cache = measure::drop_from_page_cache(measure::model_files(path));
  result.peak_rss_reset = measure::reset_peak_rss();
  TaskProgress progress(options, label + " " + backend_name);
  progress.next("cold load");
  Loaded loaded = load(path, *backend);
  result.cold_load_s = loaded.seconds;
  result.cold_is_first_load = first_load;
  result.rss_after_load_bytes = measure::rss_bytes();
  loaded.model.reset();
  std::vector<double> warm;
  for (int64_t rep = 0; rep < options.reps; ++rep) {
    progress.next(fmt::format("warm load {}/{}", rep + 1, options.reps));
    loaded = load(path, *backend);
    warm.push_back(loaded.seconds);
    if (rep + 1 < options.reps) loaded.model.reset();
  }
  result.warm_load_s = make_measurement(warm);
  Model& model = *loaded.model;

  std::mt19937_64 rng(options.seed);
  std::vector<int32_t> prompt = random_ids(options.prompt_tokens, summary.vocab_size, rng);
  // A warm-up pass of the timed shapes, not counted: caches, the thread pool, first touch of the
  // weights, and on a GPU the first allocations of the prompt's sizes, library set-up and the
  // decoding step's graph for this cache size (a 16-token warm-up left those to the first timed
  // pass: H100, 8B bf16 pp512 17622 tok/s with one repetition where bench_cuda measures 31935).
  // Transformers' peer warms up on the whole prompt too.
  progress.next("warm-up");
  run_pass(model, prompt, options.gen_tokens, std::min<int64_t>(options.gen_tokens, 4));
  std::vector<double> prompt_s, ttft_s, gen_s;
  for (int64_t rep = 0; rep < options.reps; ++rep) {
    progress.next(fmt::format("pp{} tg{} {}/{}", options.prompt_tokens, options.gen_tokens, rep + 1,
                              options.reps));
    Pass pass = run_pass(model, prompt, options.gen_tokens, options.gen_tokens);
    prompt_s.push_back(pass.prompt_s);
    ttft_s.push_back(pass.ttft_s);
    gen_s.push_back(pass.gen_s);
  }
  result.prompt_s = make_measurement(prompt_s);
  result.prompt_tok_s = make_measurement(rates(options.prompt_tokens, prompt_s));
  result.ttft_s = make_measurement(ttft_s);
  if (options.gen_tokens > 0) {
    result.gen_s = make_measurement(gen_s);
    result.gen_tok_s = make_measurement(rates(options.gen_tokens, gen_s));
  }
  result.peak_rss_bytes = measure::peak_rss_bytes();
  if (backend->device() != Device::CPU) {
    result.gpu_peak_bytes = backend->peak_device_bytes();
  }
  result.measured = true;
  progress.finished(fmt::format("done: pp{} {:.1f} tok/s, tg{} {:.1f} tok/s", options.prompt_tokens,
                                result.prompt_tok_s.mean, options.gen_tokens,
                                result.gen_tok_s.mean));
  return result;
}

}  // namespace

Measurement make_measurement(std::vector<double> values) {
  Measurement m;
  m.values = std::move(values);
  const double n = static_cast<double>(m.values.size());
  if (m.values.empty()) return m;
  m.mean = std::accumulate(m.values.begin(), m.values.end(), 0.0) / n;
  if (m.values.size() > 1) {
    double squares = 0;
    for (double v : m.values) squares += (v - m.mean) * (v - m.mean);
    m.sd = std::sqrt(squares / (n - 1));
  }
  return m;
}

BenchmarkResult run_benchmark(const BenchmarkOptions& options) {
  check(!options.models.empty(), "no model to benchmark");
  check(options.prompt_tokens >= 1, "prompt tokens must be at least 1, not {}",
        options.prompt_tokens);
  check(options.gen_tokens >= 0, "generated tokens must not be negative, not {}",
        options.gen_tokens);
  check(options.reps >= 1, "repetitions must be at least 1, not {}", options.reps);
  std::vector<BackendEntry> registry = registered_backends();
  std::vector<BackendEntry> selected;
  if (options.backends.empty()) {
    selected = registry;
  } else {
    for (const auto& name : options.backends) {
      auto found = std::find_if(registry.begin(), registry.end(),
                                [&](const BackendEntry& e) { return e.name == name; });
      if (found == registry.end()) {
        std::string known;
        for (const auto& e : registry) known += (known.empty() ? "" : ", ") + e.name;
        fail("unknown device '{}' (known: {}, auto)", name, known);
      }
      selected.push_back(*found);
    }
  }
  BenchmarkResult result;
  result.prompt_tokens = options.prompt_tokens;
  result.gen_tokens = options.gen_tokens;
  result.reps = options.reps;
  result.seed = options.seed;
  result.threads = omp_get_max_threads();
  std::set<std::string> loaded_before;
  for (size_t i = 0; i < options.models.size(); ++i) {
    const auto& path = options.models[i];
    const std::string label =
        fmt::format("model {}/{} {}", i + 1, options.models.size(), path.filename().string());
    ModelBenchmark model;
    model.model = summarize_model(path);
    for (const auto& entry : selected) {
      if (!entry.available) {
        BackendBenchmark skipped;
        skipped.backend = entry.name;
        skipped.not_measured = entry.unavailable_reason;
        model.backends.push_back(skipped);
        continue;
      }
      const std::string key = std::filesystem::weakly_canonical(path).string();
      const bool first = loaded_before.insert(key).second;
      model.backends.push_back(
          run_on_backend(options, label, path, model.model, entry.name, first));
    }
    result.models.push_back(std::move(model));
  }
  return result;
}

}  // namespace flow2
