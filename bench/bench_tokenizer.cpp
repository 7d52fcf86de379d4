// Tokenizer speed: load time of a tokenizer.json and single-threaded encoding throughput (MB/s)
// on a text file, the figures to set beside Hugging Face `tokenizers` (bench/tokenizer_peer.py).
//
// Usage: bench_tokenizer TOKENIZER_JSON TEXT_FILE [--runs 5]
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include "flow2/error.h"
#include "flow2/tokenizer.h"

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: bench_tokenizer TOKENIZER_JSON TEXT_FILE [--runs N]\n");
    return 2;
  }
  int runs = 5;
  if (argc >= 5 && std::string(argv[3]) == "--runs") runs = std::max(1, std::atoi(argv[4]));
  omp_set_num_threads(1);
  try {
    std::ifstream stream(argv[2], std::ios::binary);
    flow2::check(stream.good(), "{}: cannot open", argv[2]);
    std::stringstream buffer;
    buffer << stream.rdbuf();
    const std::string text = buffer.str();

    std::vector<std::string_view> lines;
    for (size_t start = 0; start < text.size();) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      lines.push_back(std::string_view(text).substr(start, end - start));
      start = end + 1;
    }
    // Two workloads: the whole text as one string, and one encode call per line.
    std::vector<double> load_times, whole_times, line_times;
    size_t whole_tokens = 0, line_tokens = 0;
    for (int run = 0; run < runs; ++run) {
      double start = now_seconds();
      auto tokenizer = flow2::Tokenizer::from_file(argv[1]);
      load_times.push_back(now_seconds() - start);
      start = now_seconds();
      whole_tokens = tokenizer.encode(text).size();
      whole_times.push_back(now_seconds() - start);
      start = now_seconds();
      line_tokens = 0;
      for (auto line : lines) line_tokens += tokenizer.encode(line).size();
      line_times.push_back(now_seconds() - start);
    }
    double megabytes = static_cast<double>(text.size()) / 1e6;
    fmt::print("{:<10} {:>8} {:>14} {:>14} {:>12} {:>12} {:>8}\n", "impl", "load_ms", "whole_MB/s",
               "lines_MB/s", "whole_tokens", "line_tokens", "MB");
    fmt::print("{:<10} {:>8.1f} {:>14.2f} {:>14.2f} {:>12} {:>12} {:>8.2f}\n", "flow2",
               median(load_times) * 1e3, megabytes / median(whole_times),
               megabytes / median(line_times), whole_tokens, line_tokens, megabytes);
  } catch (const flow2::Error& error) {
    fmt::print(stderr, "bench_tokenizer: {}\n", error.what());
    return 1;
  }
  return 0;
}
