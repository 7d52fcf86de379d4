// Load time of a model on a backend with the page cache warm: open the checkpoint, Model::load,
// then wait for the device (a read-back queued after the weights' copies), each repetition with
// a fresh model on the same backend, as flow2 bench's warm loads. The FLOW2_UPLOAD_* variables
// (backend/cuda/cuda_upload.h) select the CUDA staging settings to compare.
//
// Usage: bench_load --model DIR_OR_GGUF [--device cuda] [--reps 5]
// Prints one JSON object: seconds per repetition until Model::load returned ("returned_s") and
// until the device had every weight ("ready_s"), the best of each, and GB/s of the files' bytes.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "flow2/backend.h"
#include "flow2/model.h"
#include "measure/page_cache.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Reads every file under `path` once, so that the loads find them in the page cache.
uint64_t warm_page_cache(const std::filesystem::path& path) {
  uint64_t bytes = 0;
  std::vector<char> buffer(size_t{64} << 20);
  for (const auto& file : flow2::measure::model_files(path)) {
    std::ifstream in(file, std::ios::binary);
    while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount()) {
      bytes += static_cast<uint64_t>(in.gcount());
    }
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, device = "cuda";
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (flag == "--model") {
      model_path = value();
    } else if (flag == "--device") {
      device = value();
    } else if (flag == "--reps") {
      reps = std::stoi(value());
    } else {
      fmt::print(stderr, "bench_load: unknown flag {}\n", flag);
      return 2;
    }
  }
  if (model_path.empty() || reps < 1) {
    fmt::print(stderr, "usage: bench_load --model DIR_OR_GGUF [--device cuda] [--reps 5]\n");
    return 2;
  }
  try {
    const uint64_t file_bytes = warm_page_cache(model_path);
    auto backend = flow2::make_backend(device);
    std::vector<double> returned, ready;
    for (int rep = 0; rep < reps; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      auto model = flow2::Model::load(flow2::open_checkpoint(model_path), *backend);
      returned.push_back(seconds_since(start));
      // Ordered after every copy: the stream waited for each weight's copies.
      flow2::Tensor probe = backend->zeros({1});
      backend->to_host(probe);
      ready.push_back(seconds_since(start));
    }
    const double best = *std::min_element(ready.begin(), ready.end());
    nlohmann::ordered_json out;
    out["model"] = model_path;
    out["device"] = device;
    out["file_bytes"] = file_bytes;
    out["returned_s"] = returned;
    out["ready_s"] = ready;
    out["best_returned_s"] = *std::min_element(returned.begin(), returned.end());
    out["best_ready_s"] = best;
    out["best_gb_per_s"] = static_cast<double>(file_bytes) / best / 1e9;
    out["peak_device_bytes"] = backend->peak_device_bytes();
    fmt::print("{}\n", out.dump());
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench_load: {}\n", error.what());
    return 1;
  }
  return 0;
}
