// flow2 bench and the benchmark library on the tiny-llama fixture with tiny token counts: every
// field present, rates equal to tokens / seconds per repetition, standard deviations, counts,
// backends from the registry, and errors for bad flags and models.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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
