// Matrix-product throughput of the CPU backend on the shapes a forward pass uses:
// M = 1 (one decoded token: a matrix-vector product) and M = 32..512 (prompt prefill).
// Prints FLOP/s per shape (the "FLOPS" column, in G when it says G).
#include <benchmark/benchmark.h>

#include <random>

#include "flow2/backend.h"

namespace {

std::vector<float> random_matrix(int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> values(count);
  for (auto& v : values) v = normal(rng);
  return values;
}

void BM_Matmul(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  auto backend = flow2::make_cpu_backend();
  flow2::Tensor x = backend->from_host(random_matrix(m * k, 1), {m, k});
  flow2::Tensor w = backend->from_host(random_matrix(n * k, 2), {n, k});
  flow2::Tensor out = backend->empty({m, n});
  for (auto _ : state) {
    backend->matmul(out, x, w, nullptr);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["FLOPS"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["weight_GB/s"] = benchmark::Counter(
      4.0 * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// {M, K, N}: SmolLM2-135M (576 / 1536), Llama 3.2 1B (2048 / 8192) and Llama 3.1 8B (4096).
BENCHMARK(BM_Matmul)
    ->ArgNames({"M", "K", "N"})
    ->Args({1, 576, 576})
    ->Args({1, 576, 1536})
    ->Args({1, 2048, 2048})
    ->Args({1, 2048, 8192})
    ->Args({1, 4096, 4096})
    ->Args({32, 2048, 2048})
    ->Args({128, 2048, 2048})
    ->Args({512, 576, 1536})
    ->Args({512, 2048, 2048})
    ->Args({512, 2048, 8192})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
