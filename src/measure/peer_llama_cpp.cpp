// llama.cpp's llama-bench as a peer: run with flow2's sizes and threads on the same GGUF file,
// its JSON tests (one per pp / tg size) read into flow2 bench's shape.
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cctype>

#include "flow2/error.h"
#include "measure/peers.h"
#include "measure/run_command.h"

namespace flow2::measure {
namespace {

constexpr const char* kWhat = "llama-bench -o json output";

int64_t integer_key(const Json& test, size_t index, const char* key) {
  check(test.contains(key) && test[key].is_number_integer(),
        "{}, test {}: key '{}' is missing or not an integer", kWhat, index, key);
  return test[key].get<int64_t>();
}

double number_key(const Json& test, size_t index, const char* key) {
  check(test.contains(key) && test[key].is_number(),
        "{}, test {}: key '{}' is missing or not a number", kWhat, index, key);
  return test[key].get<double>();
}

// avg_ts, stddev_ts and samples_ts as {"mean", "sd", "n", "values"} (tokens per second).
Json rate(const Json& test, size_t index) {
  const double mean = number_key(test, index, "avg_ts");
  const double sd = number_key(test, index, "stddev_ts");
  check(test.contains("samples_ts") && test["samples_ts"].is_array(),
        "{}, test {}: key 'samples_ts' is missing or not an array", kWhat, index);
  Json values = Json::array();
  for (const auto& value : test["samples_ts"]) {
    check(value.is_number(), "{}, test {}: 'samples_ts' holds a non-number: {}", kWhat, index,
          value.dump());
    values.push_back(value);
  }
  return Json{{"mean", mean}, {"sd", sd}, {"n", values.size()}, {"values", values}};
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

Json parse_llama_bench_output(const std::string& output, int64_t prompt_tokens,
                              int64_t gen_tokens) {
  Json tests = Json::parse(output, nullptr, false);
  check(tests.is_array(), "{} is not a JSON array: '{}'", kWhat, output.substr(0, 300));
  Json out{{"status", "ok"}, {"framework", "llama.cpp llama-bench"}, {"device", "cpu"}};
  std::vector<std::string> seen;
  for (size_t index = 0; index < tests.size(); ++index) {
    const Json& test = tests[index];
    check(test.is_object(), "{}, test {}: not an object", kWhat, index);
    const int64_t pp = integer_key(test, index, "n_prompt");
    const int64_t tg = integer_key(test, index, "n_gen");
    const int64_t depth = test.value("n_depth", int64_t{0});
    seen.push_back(pp > 0 ? fmt::format("pp{}", pp) : fmt::format("tg{}", tg));
    if (depth != 0) continue;
    if (pp == prompt_tokens && tg == 0) out["prompt_tok_s"] = rate(test, index);
    if (pp == 0 && tg == gen_tokens && gen_tokens > 0) out["gen_tok_s"] = rate(test, index);
    const std::string commit = test.value("build_commit", "");
    if (!commit.empty()) out["framework"] = "llama.cpp llama-bench " + commit;
    const std::string backends = test.value("backends", "");
    if (!backends.empty()) out["device"] = lowercase(backends);
    for (const auto& [from, to] : {std::pair{"n_threads", "threads"},
                                   {"model_type", "model_type"},
                                   {"model_size", "model_size_bytes"},
                                   {"model_n_params", "model_parameters"},
                                   {"cpu_info", "cpu"}}) {
      if (test.contains(from)) out[to] = test[from];
    }
  }
  check(out.contains("prompt_tok_s"), "{} has no pp{} test (it has: {})", kWhat, prompt_tokens,
        fmt::join(seen, ", "));
  check(gen_tokens == 0 || out.contains("gen_tok_s"), "{} has no tg{} test (it has: {})", kWhat,
        gen_tokens, fmt::join(seen, ", "));
  return out;
}

Json llama_cpp_peer(const std::filesystem::path& model, const PeerOptions& options) {
  const auto bench =
      find_peer_program(options.llama_bench, "--llama-bench", "LLAMA_BENCH", "llama-bench");
  if (!bench) {
    return peer_not_measured(
        "llama-bench is not installed (not on PATH; set LLAMA_BENCH or --llama-bench)");
  }
  if (model.extension() != ".gguf") {
    return peer_not_measured("llama-bench runs GGUF files only, and " + model.filename().string() +
                             " is not one");
  }
  const std::string command = fmt::format(
      "{} -m {} -p {} -n {} -r {} -t {} -o json", shell_quote(*bench), shell_quote(model.string()),
      options.prompt_tokens, options.gen_tokens, options.reps, omp_get_max_threads());
  CommandResult run = run_command(command);
  check(run.status == 0, "{} failed (exit status {}): {}", *bench, run.status,
        tail(run.error_output.empty() ? run.output : run.error_output));
  Json out = parse_llama_bench_output(run.output, options.prompt_tokens, options.gen_tokens);
  out["program"] = *bench;
  return out;
}

}  // namespace flow2::measure
