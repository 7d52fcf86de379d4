// LoRA training throughput on the CPU: forward + backward of one micro-batch of random tokens
// on a real checkpoint (default: the SmolLM2 Q4_1 GGUF in flow2's cache), rank-8 adapters on
// every attention and MLP projection. Prints trained tokens per second, with and without
// gradient checkpointing.
//   bench_train [model] [rows] [tokens per row] [repetitions]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include <fmt/format.h>

#include "flow2/lora_training.h"

using namespace flow2;

namespace {

LoraAdapter random_adapter(const ModelConfig& c) {
  LoraAdapter adapter;
  adapter.config.rank = 8;
  adapter.config.alpha = 16;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  struct Target {
    const char* path;
    int64_t in, out;
  };
  const Target targets[] = {{"self_attn.q_proj", c.hidden_size, c.q_dim()},
                            {"self_attn.k_proj", c.hidden_size, c.kv_dim()},
                            {"self_attn.v_proj", c.hidden_size, c.kv_dim()},
                            {"self_attn.o_proj", c.q_dim(), c.hidden_size},
                            {"mlp.gate_proj", c.hidden_size, c.intermediate_size},
                            {"mlp.up_proj", c.hidden_size, c.intermediate_size},
                            {"mlp.down_proj", c.intermediate_size, c.hidden_size}};
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    for (const Target& t : targets) {
      LoraModule m;
      m.layer = layer;
      m.target = t.path;
      m.name = fmt::format("base_model.model.model.layers.{}.{}", layer, t.path);
      m.in = t.in;
      m.out = t.out;
      m.a.resize(static_cast<size_t>(8 * t.in));
      m.b.resize(static_cast<size_t>(8 * t.out));
      for (float& v : m.a) v = normal(rng);
      for (float& v : m.b) v = normal(rng);
      adapter.modules.push_back(std::move(m));
    }
  }
  return adapter;
}

}  // namespace

int main(int argc, char** argv) {
  const char* home = std::getenv("HOME");
  std::string model = argc > 1 ? argv[1]
                               : std::string(home ? home : ".") +
                                     "/.cache/flow2/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  const int64_t rows = argc > 2 ? std::atoll(argv[2]) : 4;
  const int64_t columns = argc > 3 ? std::atoll(argv[3]) : 128;
  const int repetitions = argc > 4 ? std::atoi(argv[4]) : 3;
  try {
    Checkpoint checkpoint = open_checkpoint(model);
    if (checkpoint.config.family == ModelFamily::Gpt2) {
      std::fprintf(stderr, "bench_train: llama-family models only\n");
      return 1;
    }
    Batch batch;
    batch.rows = rows;
    batch.columns = columns;
    std::mt19937 rng(2);
    for (int64_t i = 0; i < rows * columns; ++i) {
      batch.ids.push_back(static_cast<int32_t>(rng() % checkpoint.config.vocab_size));
      batch.label_mask.push_back(i % columns == 0 ? 0 : 1);
    }
    std::printf("%s, micro-batch %lld x %lld, rank 8 on q,k,v,o,gate,up,down\n", model.c_str(),
                static_cast<long long>(rows), static_cast<long long>(columns));
    for (bool checkpointing : {false, true}) {
      LoraAdapter adapter = random_adapter(checkpoint.config);
      auto trainer = make_lora_training_model(checkpoint, adapter, {checkpointing});
      trainer->accumulate_gradients(batch, 0);  // warm-up
      double best = 1e30;
      for (int r = 0; r < repetitions; ++r) {
        auto start = std::chrono::steady_clock::now();
        trainer->accumulate_gradients(batch, static_cast<uint64_t>(r));
        best = std::min(
            best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      auto start = std::chrono::steady_clock::now();
      trainer->evaluate(batch);
      double forward =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf(
          "grad_checkpoint %-3s: forward+backward %.3f s = %.1f tokens/s (forward alone "
          "%.3f s)\n",
          checkpointing ? "on" : "off", best, rows * columns / best, forward);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_train: %s\n", error.what());
    return 1;
  }
  return 0;
}
