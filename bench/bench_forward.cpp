// End-to-end CPU speed of the forward pass at real model shapes (random weights):
// load time, prompt processing (pp) and generation (tg) in tokens/s, median of several runs,
// the figures llama-bench reports as pp512 / tg128.
//
// Usage: bench_forward [--model PATH | --shape smollm2-135m|llama3.2-1b [--dir DIR]]
//                      [--prompt 512] [--generate 128] [--runs 3]
// --model measures a real checkpoint (a model directory or a GGUF file).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "flow2/error.h"
#include "flow2/generate.h"
#include "flow2/model.h"
#include "random_checkpoint.h"

namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape_name = "smollm2-135m";
  int64_t prompt_tokens = 512, generate_tokens = 128, runs = 3;
  std::string directory, model_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--shape") {
      shape_name = value;
    } else if (flag == "--prompt") {
      prompt_tokens = std::stoll(value);
    } else if (flag == "--generate") {
      generate_tokens = std::stoll(value);
    } else if (flag == "--runs") {
      runs = std::stoll(value);
    } else if (flag == "--dir") {
      directory = value;
    } else if (flag == "--model") {
      model_path = value;
    } else {
      fmt::print(stderr, "bench_forward: unknown flag {}\n", flag);
      return 2;
    }
  }
  try {
    std::string label = shape_name;
    if (model_path.empty()) {
      auto shape = flow2::bench::llama_shape(shape_name);
      if (directory.empty()) {
        directory =
            (std::filesystem::temp_directory_path() / ("flow2-bench-" + shape_name)).string();
      }
      if (!std::filesystem::exists(std::filesystem::path(directory) / "model.safetensors")) {
        fmt::print("writing random {} checkpoint to {}\n", shape_name, directory);
        flow2::bench::write_random_llama(directory, shape, 42);
      }
      model_path = directory;
    } else {
      label = std::filesystem::path(model_path).filename().string();
    }
    double start = now_seconds();
    auto backend = flow2::make_cpu_backend();
    auto model = flow2::Model::load(flow2::open_checkpoint(model_path), *backend);
    double load_seconds = now_seconds() - start;
    const int64_t vocab = model->config().vocab_size;

    std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919) % vocab);
    std::vector<double> prefill_rates, decode_rates;
    for (int64_t run = 0; run < runs; ++run) {
      auto cache = model->make_cache(1, prompt_tokens);
      double t0 = now_seconds();
      model->forward(prompt, 1, cache, flow2::LogitRows::Last);
      prefill_rates.push_back(prompt_tokens / (now_seconds() - t0));

      flow2::GenerationOptions options;
      options.max_new_tokens = generate_tokens + 1;  // the first token comes from the prefill
      std::vector<int32_t> one = {prompt[0]};
      auto result = flow2::generate(*model, one, options);
      decode_rates.push_back(static_cast<double>(result.ids.size() - 1) / result.decode_seconds);
    }
    fmt::print("{:<36} {:>10} {:>14} {:>14}\n", "model", "load_s",
               "pp" + std::to_string(prompt_tokens) + " tok/s",
               "tg" + std::to_string(generate_tokens) + " tok/s");
    fmt::print("{:<36} {:>10.3f} {:>14.1f} {:>14.1f}\n", label, load_seconds, median(prefill_rates),
               median(decode_rates));
  } catch (const flow2::Error& error) {
    fmt::print(stderr, "bench_forward: {}\n", error.what());
    return 1;
  }
  return 0;
}
