// Stand-in peers for the --compare tests of bench and report: shell scripts named like the
// peers' programs that record their arguments and print a captured output (tests/data/peers),
// and helpers to read what they were called with and what they printed.
#pragma once

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flow2/gguf_export.h"
#include "test_support.h"

namespace flow2::testing {

// Sets environment variables for the commands a test runs, and restores them afterwards.
class Environment {
 public:
  void set(const std::string& name, const std::optional<std::string>& value) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  ~Environment() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// An executable shell script that writes its arguments, one a line, to `args_file` and prints
// `output_file`.
inline void write_fake_program(const std::filesystem::path& path,
                               const std::filesystem::path& args_file,
                               const std::filesystem::path& output_file) {
  write_file(path, "#!/bin/sh\nprintf '%s\\n' \"$@\" > '" + args_file.string() + "'\ncat '" +
                       output_file.string() + "'\n");
  ::chmod(path.c_str(), 0755);
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0, end;
  while ((end = text.find('\n', start)) != std::string::npos) {
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (start < text.size()) lines.push_back(text.substr(start));
  return lines;
}

// The value after `flag` in a list of arguments, or "" when the flag is not there.
inline std::string argument(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) return args[i + 1];
  }
  return "";
}

// "313.8 ± 5.3" for a mean and sd printed with one decimal.
inline std::string mean_sd(double mean, double sd, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f ± %.*f", digits, mean, digits, sd);
  return text;
}

// `dir`/bin/llama-bench and `dir`/bin/fake-python replaying the captured outputs of the default
// model (pp128 / tg32 / 2 repetitions), their arguments in `dir`/llama-bench.args and python.args.
inline void write_fake_peers(const TempDir& dir) {
  std::filesystem::create_directories(dir / "bin");
  write_fake_program(dir / "bin" / "llama-bench", dir / "llama-bench.args",
                     data_path("peers/llama_bench_smollm2_q4_1.json"));
  write_fake_program(dir / "bin" / "fake-python", dir / "python.args",
                     data_path("peers/peer_transformers_smollm2_q4_1.json"));
}

// No peer installed: PATH is the empty `dir`/empty, $LLAMA_BENCH and $FLOW2_PYTHON unset.
inline void hide_peers(Environment& environment, const TempDir& dir) {
  std::filesystem::create_directories(dir / "empty");
  environment.set("PATH", (dir / "empty").string());
  environment.set("LLAMA_BENCH", std::nullopt);
  environment.set("FLOW2_PYTHON", std::nullopt);
}

// `dir`/tiny.gguf: the tiny-llama fixture as an F32 GGUF file, written on the first call.
inline std::filesystem::path tiny_gguf(const TempDir& dir) {
  const auto model = dir / "tiny.gguf";
  if (!std::filesystem::exists(model)) {
    export_gguf(open_checkpoint(model_path("tiny-llama")), model, {DType::F32});
  }
  return model;
}

// The llama-bench test of the captured output with n_prompt = pp and n_gen = tg.
inline nlohmann::json llama_test(const nlohmann::json& tests, int pp, int tg) {
  for (const auto& test : tests) {
    if (test["n_prompt"] == pp && test["n_gen"] == tg) return test;
  }
  return nlohmann::json();
}

}  // namespace flow2::testing
