// The benchmark suite behind `flow2 bench` and the report: for each model and backend, cold and
// warm load time, resident memory, prompt and generation speed and time to first token, each as
// mean and standard deviation over repetitions (llama-bench's pp512 / tg128), plus what the
// model is (size on disk, dtypes, parameters).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "flow2/progress.h"

namespace flow2 {

struct BenchmarkOptions {
  std::vector<std::filesystem::path> models;
  // Backend names to measure; empty: every backend in the registry ("auto").
  std::vector<std::string> backends;
  int64_t prompt_tokens = 512;
  int64_t gen_tokens = 128;
  int64_t reps = 5;
  uint64_t seed = 0;  // the random prompt ids
  // Progress per model and backend: "model 1/2 a.gguf cpu: warm load 3/5", counting the cold
  // load, the warm loads, the warm-up pass and the timed passes (2 * reps + 2 units), then one
  // event with done == total and the speeds. May be empty.
  ProgressCallback progress;
};

// Mean and sample standard deviation (0 for one value) of the per-repetition values.
struct Measurement {
  std::vector<double> values;
  double mean = 0;
  double sd = 0;
};
Measurement make_measurement(std::vector<double> values);

// What posix_fadvise(DONTNEED) did to the model's files before the cold load, checked with
// mincore: bytes of the files in the page cache before and after.
struct PageCacheDrop {
  bool attempted = false;
  bool dropped = false;  // nothing of the files was left in the page cache
  int64_t resident_before_bytes = 0;
  int64_t resident_after_bytes = 0;
  std::string error;  // why it could not be attempted or checked
};

// What a model is, read from its headers.
struct ModelSummary {
  std::string path;
  std::string name;  // the file or directory name
  std::string architecture;
  int64_t layers = 0;
  int64_t hidden_size = 0;
  int64_t vocab_size = 0;
  int64_t parameters = 0;
  int64_t bytes_on_disk = 0;  // every file of the checkpoint
  int64_t weight_bytes = 0;   // the tensors' data
  std::string dtype;          // the dtype holding the most parameters
  std::map<std::string, int64_t> parameters_by_dtype;
  double bits_per_weight = 0;  // weight_bytes * 8 / parameters
};
ModelSummary summarize_model(const std::filesystem::path& path);

struct BackendBenchmark {
  std::string backend;
  bool measured = false;
  std::string not_measured;         // why, when not measured
  double cold_load_s = 0;           // the first load of this model in the process
  bool cold_is_first_load = false;  // no earlier load of the model in this process
  PageCacheDrop page_cache;
  Measurement warm_load_s;
  int64_t rss_after_load_bytes = 0;
  int64_t peak_rss_bytes = 0;   // VmHWM after the runs
  bool peak_rss_reset = false;  // VmHWM was reset before this model (else the process peak)
  std::optional<int64_t> gpu_peak_bytes;  // nullopt on the CPU
  Measurement prompt_s, prompt_tok_s;     // prefill of prompt_tokens
  Measurement gen_s, gen_tok_s;           // gen_tokens decode steps, batch 1
  Measurement ttft_s;                     // prefill plus choosing the first token
};

struct ModelBenchmark {
  ModelSummary model;
  std::vector<BackendBenchmark> backends;
};

struct BenchmarkResult {
  int64_t prompt_tokens = 0;
  int64_t gen_tokens = 0;
  int64_t reps = 0;
  uint64_t seed = 0;
  int threads = 0;
  std::vector<ModelBenchmark> models;
};

// Measures every model on every selected backend. A backend that cannot run (unknown to the
// registry is an error; known but without ops or devices is not) is reported as not measured.
BenchmarkResult run_benchmark(const BenchmarkOptions& options);

nlohmann::ordered_json benchmark_json(const BenchmarkResult& result);
nlohmann::ordered_json model_summary_json(const ModelSummary& summary);

}  // namespace flow2
