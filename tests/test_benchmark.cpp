// flow2 bench and the benchmark library on the tiny-llama fixture with tiny token counts: every
// field present, rates equal to tokens / seconds per repetition, standard deviations, counts,
// backends from the registry, and errors for bad flags and models.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "cli_runner.h"
#include "flow2/benchmark.h"
#include "flow2/build_info.h"
#include "flow2/error.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;
using testing::model_path;
using testing::run_cli;

BenchmarkOptions tiny_options() {
  BenchmarkOptions options;
  options.models = {model_path("tiny-llama")};
  options.backends = {"cpu"};
  options.prompt_tokens = 8;
  options.gen_tokens = 4;
  options.reps = 3;
  return options;
}

void expect_rates(const Measurement& rate, const Measurement& secs, int64_t tokens, int64_t reps) {
  ASSERT_EQ(rate.values.size(), static_cast<size_t>(reps));
  ASSERT_EQ(secs.values.size(), static_cast<size_t>(reps));
  for (size_t i = 0; i < rate.values.size(); ++i) {
    EXPECT_GT(secs.values[i], 0);
    EXPECT_NEAR(rate.values[i], tokens / secs.values[i], 1e-9 * rate.values[i]);
  }
  EXPECT_GE(rate.sd, 0);
  EXPECT_GE(secs.sd, 0);
  double sum = 0;
  for (double v : rate.values) sum += v;
  EXPECT_NEAR(rate.mean, sum / reps, 1e-9 * rate.mean);
}

TEST(Benchmark, MeasurementIsMeanAndSampleSd) {
  Measurement m = make_measurement({1, 2, 3});
  EXPECT_DOUBLE_EQ(m.mean, 2);
  EXPECT_DOUBLE_EQ(m.sd, 1);
  EXPECT_DOUBLE_EQ(make_measurement({5}).sd, 0);
}

TEST(Benchmark, TinyLlamaFieldsAreConsistent) {
  BenchmarkOptions options = tiny_options();
  BenchmarkResult result = run_benchmark(options);
  ASSERT_EQ(result.models.size(), 1u);
  const ModelBenchmark& model = result.models[0];
  EXPECT_EQ(model.model.name, "tiny-llama");
  EXPECT_GT(model.model.parameters, 0);
  EXPECT_GT(model.model.bytes_on_disk, model.model.weight_bytes / 2);
  EXPECT_EQ(model.model.dtype, "F32");
  EXPECT_NEAR(model.model.bits_per_weight, 32, 1e-9);
  ASSERT_EQ(model.backends.size(), 1u);
  const BackendBenchmark& b = model.backends[0];
  ASSERT_TRUE(b.measured);
  EXPECT_EQ(b.backend, "cpu");
  EXPECT_GT(b.cold_load_s, 0);
  EXPECT_EQ(b.warm_load_s.values.size(), 3u);
  EXPECT_GT(b.rss_after_load_bytes, 0);
  EXPECT_GE(b.peak_rss_bytes, b.rss_after_load_bytes);
  EXPECT_FALSE(b.gpu_peak_bytes.has_value());
  EXPECT_TRUE(b.page_cache.attempted) << b.page_cache.error;
  expect_rates(b.prompt_tok_s, b.prompt_s, 8, 3);
  expect_rates(b.gen_tok_s, b.gen_s, 4, 3);
  for (size_t i = 0; i < 3; ++i) EXPECT_GE(b.ttft_s.values[i], b.prompt_s.values[i]);
}

TEST(Benchmark, AutoListsEveryRegisteredBackend) {
  BenchmarkOptions options = tiny_options();
  options.backends.clear();
  options.reps = 1;
  BenchmarkResult result = run_benchmark(options);
  bool cuda_listed = false;
  for (const auto& b : result.models[0].backends) {
    if (b.backend == "cuda") {
      cuda_listed = true;
      // Measured, with the GPU's peak memory, where a GPU is visible; listed with the reason
      // elsewhere.
      const bool gpu = cuda_device_count() > 0;
      EXPECT_EQ(b.measured, gpu);
      EXPECT_EQ(b.not_measured.empty(), gpu);
      EXPECT_EQ(b.gpu_peak_bytes.has_value(), gpu);
    }
  }
  EXPECT_TRUE(cuda_listed);
}

TEST(Benchmark, RejectsBadOptions) {
  BenchmarkOptions options = tiny_options();
  options.reps = 0;
  EXPECT_THROW(run_benchmark(options), Error);
  options = tiny_options();
  options.backends = {"tpu"};
  EXPECT_THROW(run_benchmark(options), Error);
  options = tiny_options();
  options.models = {model_path("no-such-model")};
  EXPECT_THROW(run_benchmark(options), Error);
}

TEST(BenchCli, JsonHasEveryField) {
  auto result = run_cli("bench --model " + model_path("tiny-llama").string() +
                        " --device cpu --prompt-tokens 8 --gen-tokens 4 --reps 2 --json");
  ASSERT_EQ(result.status, 0) << result.output;
  json out = json::parse(result.stdout_text);
  EXPECT_EQ(out["reps"], 2);
  const json& b = out["models"][0]["backends"][0];
  for (const char* key :
       {"cold_load_s", "warm_load_s", "rss_after_load_bytes", "peak_rss_bytes", "gpu_peak_bytes",
        "prompt_tok_s", "gen_tok_s", "ttft_s", "page_cache_drop"}) {
    EXPECT_TRUE(b.contains(key)) << key;
  }
  EXPECT_TRUE(b["gpu_peak_bytes"].is_null());
  EXPECT_EQ(b["gen_tok_s"]["n"], 2);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(b["gen_tok_s"]["values"][i].get<double>(),
                4 / b["gen_s"]["values"][i].get<double>(), 1e-6);
  }
  for (const char* key : {"parameters", "bytes_on_disk", "dtype", "bits_per_weight"}) {
    EXPECT_TRUE(out["models"][0]["model"].contains(key)) << key;
  }
}

TEST(BenchCli, ProgressIsOneParseableLinePerStepWithoutATerminal) {
  // stderr is a file here, so "auto" progress must be plain lines: the cold load, 2 warm loads,
  // the warm-up, 2 timed passes and the result, whose speeds are the JSON's means.
  auto result = run_cli("bench --model " + model_path("tiny-llama").string() +
                        " --device cpu --prompt-tokens 8 --gen-tokens 4 --reps 2 --json");
  ASSERT_EQ(result.status, 0) << result.output;
  const std::string errors = result.output.substr(result.stdout_text.size());
  EXPECT_EQ(errors.find('\r'), std::string::npos);
  EXPECT_EQ(errors.find('\x1b'), std::string::npos);
  std::vector<std::string> lines;
  std::stringstream stream(errors);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  const std::string head = "bench: model 1/1 tiny-llama cpu: ";
  const std::vector<std::string> steps = {"cold load", "warm load 1/2", "warm load 2/2",
                                          "warm-up",   "pp8 tg4 1/2",   "pp8 tg4 2/2"};
  ASSERT_EQ(lines.size(), steps.size() + 1) << errors;
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(lines[i], head + steps[i]);
  std::smatch done;
  ASSERT_TRUE(std::regex_match(
      lines.back(), done, std::regex(head + R"(done: pp8 ([0-9.]+) tok/s, tg4 ([0-9.]+) tok/s)")))
      << lines.back();
  const json out = json::parse(result.stdout_text);
  const json& b = out["models"][0]["backends"][0];
  EXPECT_NEAR(std::stod(done[1]), b["prompt_tok_s"]["mean"].get<double>(), 0.05 + 1e-9);
  EXPECT_NEAR(std::stod(done[2]), b["gen_tok_s"]["mean"].get<double>(), 0.05 + 1e-9);
}

TEST(BenchCli, BarsRedrawInPlaceWhenAsked) {
  auto result = run_cli("bench --model " + model_path("tiny-llama").string() +
                        " --device cpu --prompt-tokens 8 --gen-tokens 2 --reps 1 --progress bar");
  ASSERT_EQ(result.status, 0) << result.output;
  const std::string errors = result.output.substr(result.stdout_text.size());
  // One line per model and backend, redrawn with "\r": 4 steps and the finished bar.
  EXPECT_EQ(std::count(errors.begin(), errors.end(), '\r'), 5) << errors;
  EXPECT_EQ(std::count(errors.begin(), errors.end(), '\n'), 1) << errors;
  EXPECT_NE(errors.find("\r[########################] bench: model 1/1 tiny-llama cpu: done"),
            std::string::npos)
      << errors;
  EXPECT_EQ(run_cli("bench --model x --progress fancy").status, 2);
}

TEST(BenchCli, AutoDrawsBarsOnATerminal) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "script (util-linux) is not installed to give flow2 a terminal";
  }
  // script runs the command on a pseudo-terminal and copies what it prints: stderr only here.
  const std::string command = "script -qec \"" + std::string(FLOW2_CLI_PATH) + " bench --model " +
                              model_path("tiny-llama").string() +
                              " --device cpu --prompt-tokens 8 --gen-tokens 2 --reps 1"
                              " >/dev/null\" /dev/null";
  std::FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string terminal;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) terminal.append(buffer, n);
  ASSERT_EQ(pclose(pipe), 0) << terminal;
  EXPECT_NE(terminal.find("\r[########################] bench: model 1/1 tiny-llama cpu: done"),
            std::string::npos)
      << terminal;
  // Lines would end in "\r\n" on a terminal; a bar step ends in "\x1b[K" and is overdrawn.
  EXPECT_EQ(terminal.find("bench: model 1/1 tiny-llama cpu: cold load\r"), std::string::npos);
}

TEST(BenchCli, TableAndErrors) {
  const std::string model = model_path("tiny-llama").string();
  auto table = run_cli("bench --model " + model + " --prompt-tokens 8 --gen-tokens 2 --reps 1");
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.stdout_text.find("tg2 tok/s"), std::string::npos) << table.stdout_text;
  EXPECT_NE(table.stdout_text.find("cuda"), std::string::npos);  // listed, not measured
  EXPECT_EQ(run_cli("bench --model " + model + " --reps 0").status, 2);
  EXPECT_EQ(run_cli("bench --model " + model + " --prompt-tokens -3").status, 2);
  EXPECT_EQ(run_cli("bench").status, 2);
  auto missing = run_cli("bench --model /no/such/model --reps 1");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("/no/such/model"), std::string::npos) << missing.output;
  auto device = run_cli("bench --model " + model + " --device tpu --reps 1");
  EXPECT_EQ(device.status, 1);
  EXPECT_NE(device.output.find("tpu"), std::string::npos) << device.output;
}

}  // namespace
}  // namespace flow2
