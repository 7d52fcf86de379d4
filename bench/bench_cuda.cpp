// Speed of the CUDA backend: its kernels against the GPU's own limits (device copy bandwidth,
// tensor-core GEMM rate) for bf16 and every quantized weight format (Q4_0, Q4_1, MLX 4-bit
// group 64, Q8_0, Q4_K), and a Llama-3.1-8B-shaped model with random weights built in memory
// (bf16, and Q4_0 blocks): load, prompt (pp) and generation (tg) tokens/s at batch 1, and
// generation throughput of 8 and 32 sequences decoded together.
//
// Usage: bench_cuda [--device cuda:N] [--layers 32] [--prompt 512] [--generate 128]
//                   [--skip-model] [--skip-kernels] [--skip-batches] [--weights bf16|q4_0]
//                   [--kernels REGEX] [--runs 3]
// FLOW2_CUDA_GRAPHS=0 in the environment times decoding without CUDA graphs; with
// FLOW2_CUDA_PROFILE=1 as well, the backend prints the time of each op at exit.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "flow2/dtype.h"
#include "flow2/error.h"
#include "flow2/generate.h"
#include "flow2/model.h"

namespace {

using flow2::Backend;
using flow2::DType;
using flow2::HostTensor;
using flow2::Tensor;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Waits for the backend's queued work: a one-element read-back is ordered after it.
void synchronize(Backend& backend, const Tensor& any) {
  backend.to_host(any.reshaped({any.numel(), 1}).row_slice(0, 1));
}

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

// Weight formats measured: a dtype, and for Q4_1 whether pairs of blocks share d and m (MLX's
// 4-bit group-64 checkpoints load so; the CUDA backend then keeps one scale and bias per 64).
struct Format {
  const char* name;
  DType dtype;
  bool paired = false;
};

// Random bytes of a tensor: bf16 values in +-scale, or blocks of `format` whose codes are random
// and whose scales give values of about +-scale.
HostTensor random_tensor(const std::string& name, Format format, flow2::Shape shape, float scale,
                         uint64_t seed) {
  const DType dtype = format.dtype;
  const int64_t count = flow2::shape_numel(shape);
  auto bytes = std::make_shared<std::vector<std::byte>>(flow2::dtype_bytes(dtype, count));
  std::byte* data = bytes->data();
  if (dtype == DType::BF16) {
    const uint16_t one = flow2::f32_to_bf16(scale);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) {
      // bf16 of scale * u, u in [-1, 1): exponent of `scale`, random mantissa and sign.
      const uint64_t r = mix(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(i));
      const uint16_t bits = static_cast<uint16_t>(((one & 0x7f80) - (r & 0x0080)) |
                                                  ((r >> 8) & 0x007f) | ((r >> 16) & 0x8000));
      std::memcpy(data + 2 * i, &bits, 2);
    }
    return HostTensor{name, dtype, std::move(shape), *bytes, bytes};
  }
  const auto block_bytes = static_cast<int64_t>(flow2::dtype_size(dtype));
  const int64_t blocks = count / static_cast<int64_t>(flow2::dtype_block_elements(dtype));
  // Header bytes (scales) before the codes, and their values.
  const int64_t header = dtype == DType::Q4_0 || dtype == DType::Q8_0 ? 2
                         : dtype == DType::Q4_1                       ? 4
                                                                      : 16;  // Q4_K
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    std::byte* block = data + b * block_bytes;
    uint64_t r = mix(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(b));
    for (int64_t offset = header; offset < block_bytes; offset += 8) {
      r = mix(r + 1);
      std::memcpy(block + offset, &r,
                  static_cast<size_t>(std::min<int64_t>(8, block_bytes - offset)));
    }
    // Q4_1 blocks differ in d unless pairs share it.
    const float vary = 1.0f + static_cast<float>((format.paired ? b / 2 : b) % 7) / 16;
    uint16_t h[2] = {0, 0};
    if (dtype == DType::Q8_0) {
      h[0] = flow2::f32_to_f16(scale / 127);
    } else if (dtype == DType::Q4_0) {
      h[0] = flow2::f32_to_f16(scale / 8);
    } else if (dtype == DType::Q4_1) {
      h[0] = flow2::f32_to_f16(vary * scale / 8);
      h[1] = flow2::f32_to_f16(-scale);
    } else {  // Q4_K: d, dmin, then 12 bytes of random 6-bit scales and minimums
      h[0] = flow2::f32_to_f16(scale / (15 * 63));
      h[1] = flow2::f32_to_f16(scale / 63);
      r = mix(r + 2);
      std::memcpy(block + 4, &r, 8);
      r = mix(r + 3);
      std::memcpy(block + 12, &r, 4);
    }
    std::memcpy(block, h, dtype == DType::Q4_1 || dtype == DType::Q4_K ? 4 : 2);
  }
  return HostTensor{name, dtype, std::move(shape), *bytes, bytes};
}

HostTensor random_tensor(const std::string& name, DType dtype, flow2::Shape shape, float scale,
                         uint64_t seed) {
  return random_tensor(name, Format{"", dtype}, std::move(shape), scale, seed);
}

// Bytes a GEMV reads for `weight` on the CUDA backend: Tensor::nbytes() (the dtype's size)
// except for Q4_K, whose split layout holds a float32 scale and offset per 32 (24 bytes per 32
// elements; the shapes here need no row padding).
double weight_bytes(const Tensor& weight) {
  if (weight.dtype() == DType::Q4_K) return static_cast<double>(weight.numel()) * 24 / 32;
  return static_cast<double>(weight.nbytes());
}

flow2::Checkpoint llama_8b(DType matrices, int64_t layers) {
  nlohmann::json config = {{"model_type", "llama"},
                           {"architectures", {"LlamaForCausalLM"}},
                           {"vocab_size", 128256},
                           {"hidden_size", 4096},
                           {"intermediate_size", 14336},
                           {"num_hidden_layers", layers},
                           {"num_attention_heads", 32},
                           {"num_key_value_heads", 8},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 500000.0},
                           {"max_position_embeddings", 131072},
                           {"tie_word_embeddings", false},
                           {"torch_dtype", "bfloat16"}};
  flow2::Checkpoint checkpoint;
  checkpoint.path = "llama-3.1-8b-shaped";
  checkpoint.config = flow2::parse_model_config(config, "bench_cuda");
  uint64_t seed = 1;
  auto add = [&](const std::string& name, DType dtype, flow2::Shape shape, float scale) {
    checkpoint.weights.add(random_tensor(name, dtype, std::move(shape), scale, seed++), "memory");
  };
  const int64_t hidden = 4096, inner = 14336, kv = 1024, vocab = 128256;
  add("model.embed_tokens.weight", matrices, {vocab, hidden}, 1.0f);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm.weight", DType::BF16, {hidden}, 1.0f);
    add(p + "post_attention_layernorm.weight", DType::BF16, {hidden}, 1.0f);
    add(p + "self_attn.q_proj.weight", matrices, {hidden, hidden}, 0.03f);
    add(p + "self_attn.k_proj.weight", matrices, {kv, hidden}, 0.03f);
    add(p + "self_attn.v_proj.weight", matrices, {kv, hidden}, 0.03f);
    add(p + "self_attn.o_proj.weight", matrices, {hidden, hidden}, 0.03f);
    add(p + "mlp.gate_proj.weight", matrices, {inner, hidden}, 0.03f);
    add(p + "mlp.up_proj.weight", matrices, {inner, hidden}, 0.03f);
    add(p + "mlp.down_proj.weight", matrices, {hidden, inner}, 0.015f);
  }
  add("model.norm.weight", DType::BF16, {hidden}, 1.0f);
  add("lm_head.weight", matrices, {vocab, hidden}, 0.03f);
  return checkpoint;
}

struct ModelSpeed {
  double load_seconds = 0, prompt_rate = 0, generate_rate = 0;
  double batch8_rate = 0, batch32_rate = 0;  // generated tokens/s over all sequences
  std::vector<double> generate_rates;        // every timed run's, for their spread
  // Generation with each token read back before the next step is recorded (the GPU idles while
  // the host records), and the host time a token spends in Model::forward there.
  double synchronous_rate = 0, host_forward_us = 0;
};

// Tokens per second of `steps` greedy steps of `batch` sequences decoded together (after two
// warm-up steps: the first sizes the step arena, the second captures the step's graph).
double batched_rate(Backend& backend, flow2::Model& model, int64_t batch, int64_t steps) {
  flow2::KVCache cache = model.make_cache(batch, steps + 2);
  std::vector<int32_t> tokens(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) tokens[b] = static_cast<int32_t>(1 + 7 * b);
  for (int warm = 0; warm < 2; ++warm) {
    tokens = backend.argmax_rows(model.forward(tokens, batch, cache, flow2::LogitRows::Last));
  }
  const double t0 = now_seconds();
  for (int64_t i = 0; i < steps - 2; ++i) {
    tokens = backend.argmax_rows(model.forward(tokens, batch, cache, flow2::LogitRows::Last));
  }
  return static_cast<double>(batch * (steps - 2)) / (now_seconds() - t0);
}

ModelSpeed measure_model(Backend& backend, DType matrices, int64_t layers, int64_t prompt_tokens,
                         int64_t generate_tokens, int runs, bool batches) {
  ModelSpeed speed;
  flow2::Checkpoint checkpoint = llama_8b(matrices, layers);
  const double start = now_seconds();
  auto model = flow2::Model::load(checkpoint, backend);
  synchronize(backend, backend.zeros({1}));
  speed.load_seconds = now_seconds() - start;

  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919) % 128256);
  std::vector<double> prompt_rates, generate_rates, synchronous_rates, host_forward_us;
  for (int run = 0; run < runs + 1; ++run) {  // the first run warms up (pool, cuBLAS heuristics)
    flow2::KVCache cache = model->make_cache(1, prompt_tokens + generate_tokens + 1);
    double t0 = now_seconds();
    backend.to_host(model->forward(prompt, 1, cache, flow2::LogitRows::Last));
    double prompt_seconds = now_seconds() - t0;

    // Generation as flow2::generate runs it: a step ahead of the host.
    flow2::KVCache pipelined_cache = model->make_cache(1, generate_tokens + 2);
    std::vector<int32_t> token = {1};
    backend.to_host(model->forward(token, 1, pipelined_cache, flow2::LogitRows::Last));
    t0 = now_seconds();
    flow2::decode_greedy(*model, pipelined_cache, 1, generate_tokens);
    const double pipelined_seconds = now_seconds() - t0;

    flow2::KVCache decode_cache = model->make_cache(1, generate_tokens + 1);
    backend.to_host(model->forward(token, 1, decode_cache, flow2::LogitRows::Last));
    t0 = now_seconds();
    double in_forward = 0;
    for (int64_t i = 0; i < generate_tokens; ++i) {  // greedy, chosen on the device
      const double before = now_seconds();
      flow2::Tensor logits = model->forward(token, 1, decode_cache, flow2::LogitRows::Last);
      in_forward += now_seconds() - before;
      token[0] = backend.argmax_rows(logits)[0];
    }
    double generate_seconds = now_seconds() - t0;
    if (run == 0) continue;
    host_forward_us.push_back(in_forward * 1e6 / static_cast<double>(generate_tokens));
    synchronous_rates.push_back(static_cast<double>(generate_tokens) / generate_seconds);
    prompt_rates.push_back(static_cast<double>(prompt_tokens) / prompt_seconds);
    generate_rates.push_back(static_cast<double>(generate_tokens) / pipelined_seconds);
  }
  speed.prompt_rate = median(prompt_rates);
  speed.generate_rate = median(generate_rates);
  speed.generate_rates = generate_rates;
  speed.host_forward_us = median(host_forward_us);
  speed.synchronous_rate = median(synchronous_rates);
  if (batches) {
    speed.batch8_rate = batched_rate(backend, *model, 8, generate_tokens);
    speed.batch32_rate = batched_rate(backend, *model, 32, generate_tokens);
  }
  return speed;
}

// Median seconds of one `body`, from `repeats` samples of 10 back-to-back runs each (so that the
// read-back that waits for the GPU is not counted per run).
template <typename Body>
double time_op(Backend& backend, const Tensor& sync_on, int repeats, Body body) {
  constexpr int kBatch = 10;
  body();
  synchronize(backend, sync_on);
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_seconds();
    for (int i = 0; i < kBatch; ++i) body();
    synchronize(backend, sync_on);
    times.push_back((now_seconds() - t0) / kBatch);
  }
  return median(times);
}

// `only`: measure just the kernels whose label it matches (a regular expression; all when
// empty).
void measure_kernels(Backend& backend, const std::string& only) {
  const std::regex pattern(only.empty() ? std::string(".") : only);
  auto wanted = [&](const std::string& label) { return std::regex_search(label, pattern); };
  fmt::print("\n{:<44} {:>10} {:>12}\n", "kernel (Llama-3.1-8B shapes)", "time (us)", "rate");
  // Device copy bandwidth: kv_write is one strided device-to-device copy.
  if (wanted("device copy")) {
    const int64_t rows = 65536, width = 4096;  // 1 GiB
    Tensor source = backend.zeros({rows, width}), target = backend.zeros({rows, width});
    const double seconds =
        time_op(backend, target, 5, [&] { backend.kv_write(target, source, 1, rows, 0); });
    fmt::print("{:<44} {:>10.0f} {:>9.0f} GB/s\n", "device copy 1 GiB (read + write)",
               seconds * 1e6, 2.0 * source.nbytes() / seconds / 1e9);
  }
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {{"gate/up 14336x4096", 14336, 4096},
                          {"down 4096x14336", 4096, 14336},
                          {"q/o 4096x4096", 4096, 4096},
                          {"lm_head 128256x4096", 128256, 4096}};
  const Format formats[] = {{"BF16", DType::BF16}, {"Q4_0", DType::Q4_0},
                            {"Q4_1", DType::Q4_1}, {"MLX4/64", DType::Q4_1, true},
                            {"Q8_0", DType::Q8_0}, {"Q4_K", DType::Q4_K}};
  for (const Format& format : formats) {
    for (const Shape& shape : shapes) {
      auto label = [&](int64_t m) {
        return fmt::format("matmul {} {} m={}", format.name, shape.name, m);
      };
      std::vector<int64_t> rows;
      for (int64_t m : {1, 8, 32, 64, 512}) {
        if (wanted(label(m))) rows.push_back(m);
      }
      if (rows.empty()) continue;
      Tensor weight =
          backend.upload_weight(random_tensor("w", format, {shape.n, shape.k}, 0.03f, 7));
      for (int64_t m : rows) {
        // Two x in turn: a GEMM right after one of the same x reuses its bf16 rounding (as a
        // layer's q, k and v do), which one matmul alone does not.
        const std::vector<float> values(static_cast<size_t>(m * shape.k), 0.5f);
        const Tensor xs[] = {
            backend.upload_weight(flow2::make_host_tensor("x", {m, shape.k}, values)),
            backend.upload_weight(flow2::make_host_tensor("x", {m, shape.k}, values))};
        Tensor out = backend.empty({m, shape.n});
        int turn = 0;
        const double seconds = time_op(backend, out, 20, [&] {
          backend.matmul(out, xs[turn], weight, nullptr);
          turn = 1 - turn;
        });
        if (m <= 64) {  // bound by reading the weights
          fmt::print("{:<44} {:>10.1f} {:>9.0f} GB/s\n", label(m), seconds * 1e6,
                     weight_bytes(weight) / seconds / 1e9);
        } else {
          fmt::print("{:<44} {:>10.1f} {:>7.0f} TFLOP/s\n", label(m), seconds * 1e6,
                     2.0 * m * shape.n * shape.k / seconds / 1e12);
        }
      }
    }
  }
  // Attention runs as in a 16-bit or quantized model, which a backend sees by its weights (the
  // CUDA backend then keeps bf16 caches and uses tensor cores for prompts).
  backend.upload_weight(random_tensor("w", formats[0], {16, 16}, 0.03f, 7));
  const DType model_cache = backend.make_cache_tensor({1, 1024}).dtype();
  auto cache_name = [&](bool model_form) {
    return flow2::dtype_name(model_form ? model_cache : DType::F32);
  };
  // A cache of zeros as float32 rows or in make_cache_tensor's form.
  auto cache_of_zeros = [&](int64_t rows, bool model_form) {
    Tensor zeros = backend.zeros({rows, 1024});
    if (!model_form) return zeros;
    Tensor cache = backend.make_cache_tensor({rows, 1024});
    backend.kv_write(cache, zeros, 1, rows, 0);
    return cache;
  };
  for (int64_t context : {int64_t{512}, int64_t{4096}}) {
    for (bool model_form : {false, true}) {
      const std::string label =
          fmt::format("attention decode, {} keys, {} cache", context, cache_name(model_form));
      if (!wanted(label)) continue;
      flow2::AttentionShape shape{1, 1, context - 1, 32, 8, 128, 0.088f, 0};
      Tensor k = cache_of_zeros(context, model_form), v = cache_of_zeros(context, model_form);
      Tensor q = backend.zeros({1, 4096}), out = backend.empty({1, 4096});
      const double seconds =
          time_op(backend, out, 20, [&] { backend.attention(out, q, k, v, shape); });
      fmt::print("{:<44} {:>10.1f} {:>9.0f} GB/s\n", label, seconds * 1e6,
                 2.0 * k.nbytes() / seconds / 1e9);
    }
  }
  {
    // A token from Llama 3's 128256 logits with temperature 0.7 and top-p 0.9: chosen on the
    // device, and read back to be chosen on the CPU (Backend's default sample_rows).
    constexpr int64_t kVocab = 128256;
    std::mt19937 random(5);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    flow2::SamplingOptions options;
    options.temperature = 0.7f;
    options.top_p = 0.9f;
    for (int64_t rows : {1, 32}) {
      const std::string label = fmt::format("sample {}x{} temp 0.7 top-p 0.9", rows, kVocab);
      if (!wanted(label)) continue;
      std::vector<float> values(static_cast<size_t>(rows * kVocab));
      for (float& value : values) value = normal(random);
      Tensor logits = backend.from_host(values, {rows, kVocab});
      const std::vector<double> uniforms(static_cast<size_t>(rows), 0.5);
      auto seconds_per_call = [&](int calls, auto&& sample) {
        sample();
        const double t0 = now_seconds();
        for (int i = 0; i < calls; ++i) sample();
        return (now_seconds() - t0) / calls;
      };
      const double device =
          seconds_per_call(20, [&] { backend.sample_rows(logits, options, {}, uniforms); });
      const double host =
          seconds_per_call(3, [&] { backend.Backend::sample_rows(logits, options, {}, uniforms); });
      fmt::print("{:<44} {:>10.1f} us (read back, CPU: {:.1f} us)\n", label, device * 1e6,
                 host * 1e6);
    }
  }
  for (int64_t tokens : {int64_t{512}, int64_t{4096}}) {
    for (bool model_form : {false, true}) {
      const std::string label =
          fmt::format("attention prefill, {} tokens, {} cache", tokens, cache_name(model_form));
      if (!wanted(label)) continue;
      flow2::AttentionShape shape{1, tokens, 0, 32, 8, 128, 0.088f, 0};
      Tensor k = cache_of_zeros(tokens, model_form), v = cache_of_zeros(tokens, model_form);
      Tensor q = backend.zeros({tokens, 4096}), out = backend.empty({tokens, 4096});
      const double seconds =
          time_op(backend, out, 20, [&] { backend.attention(out, q, k, v, shape); });
      // Causal: (tokens + 1) / 2 keys per query on average; 4 FLOPs per key and dimension.
      const double flops = 4.0 * 32 * 128 * tokens * (tokens + 1) / 2;
      fmt::print("{:<44} {:>10.1f} {:>7.1f} TFLOP/s\n", label, seconds * 1e6,
                 flops / seconds / 1e12);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cuda";
  int64_t layers = 32, prompt_tokens = 512, generate_tokens = 128;
  int runs = 3;  // timed runs after a warm-up run; the table shows their medians
  bool skip_model = false, skip_kernels = false, batches = true;
  std::string only_kernels;
  std::vector<DType> weights = {DType::BF16, DType::Q4_0};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (flag == "--device") {
      device = value();
    } else if (flag == "--layers") {
      layers = std::stoll(value());
    } else if (flag == "--prompt") {
      prompt_tokens = std::stoll(value());
    } else if (flag == "--runs") {
      runs = std::max(1, std::stoi(value()));
    } else if (flag == "--generate") {
      generate_tokens = std::stoll(value());
    } else if (flag == "--skip-model") {
      skip_model = true;
    } else if (flag == "--kernels") {
      only_kernels = value();
    } else if (flag == "--skip-kernels") {
      skip_kernels = true;
    } else if (flag == "--skip-batches") {
      batches = false;
    } else if (flag == "--weights") {
      const std::string name = value();
      if (name != "bf16" && name != "q4_0") {
        fmt::print(stderr, "bench_cuda: --weights takes bf16 or q4_0, not '{}'\n", name);
        return 2;
      }
      weights = {name == "bf16" ? DType::BF16 : DType::Q4_0};
    } else {
      fmt::print(stderr, "bench_cuda: unknown flag {}\n", flag);
      return 2;
    }
  }
  try {
    auto backend = flow2::make_backend(device);
    if (!skip_kernels) measure_kernels(*backend, only_kernels);
    if (skip_model) return 0;
    fmt::print("\nLlama-3.1-8B shape, {} layers, random weights, batch 1\n", layers);
    fmt::print("{:<8} {:>10} {:>14} {:>14} {:>12} {:>12} {:>10}\n", "weights", "load (s)",
               fmt::format("pp{} tok/s", prompt_tokens), fmt::format("tg{} tok/s", generate_tokens),
               "b8 tok/s", "b32 tok/s", "peak GB");
    for (DType dtype : weights) {
      ModelSpeed speed =
          measure_model(*backend, dtype, layers, prompt_tokens, generate_tokens, runs, batches);
      fmt::print("{:<8} {:>10.2f} {:>14.0f} {:>14.1f} {:>12.0f} {:>12.0f} {:>10.1f}\n",
                 flow2::dtype_name(dtype), speed.load_seconds, speed.prompt_rate,
                 speed.generate_rate, speed.batch8_rate, speed.batch32_rate,
                 static_cast<double>(backend->peak_device_bytes()) / 1e9);
      std::string runs_text;
      for (double rate : speed.generate_rates) {
        runs_text += fmt::format("{}{:.1f}", runs_text.empty() ? "" : " / ", rate);
      }
      fmt::print(
          "{:<8} tg runs {} tok/s; each token read back before the next step: {:.1f} tok/s "
          "(host time in Model::forward {:.0f} us a token)\n",
          "", runs_text, speed.synchronous_rate, speed.host_forward_us);
    }
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench_cuda: {}\n", error.what());
    return 1;
  }
  return 0;
}
