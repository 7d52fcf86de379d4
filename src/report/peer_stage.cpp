// Peers measured beside flow2, when installed: Hugging Face transformers through
// bench/peer_transformers.py, and llama.cpp's llama-bench (its -o json output) on GGUF files.
#include <fmt/format.h>
#include <omp.h>

#include "flow2/error.h"
#include "report/run_command.h"
#include "report/stages.h"

namespace flow2::report {
namespace {

Json not_installed(const std::string& reason) {
  return Json{{"status", "not installed"}, {"reason", reason}};
}

std::filesystem::path peer_script(const ReportOptions& options) {
  if (!options.peer_script.empty()) return options.peer_script;
  return std::filesystem::path(FLOW2_SOURCE_DIR) / "bench" / "peer_transformers.py";
}

Json transformers_peer(const std::filesystem::path& model, const ReportOptions& options) {
  const std::string python = find_on_path("python3");
  if (python.empty()) return not_installed("python3 is not on PATH");
  const auto script = peer_script(options);
  check(std::filesystem::exists(script), "{}: the transformers peer script is missing",
        script.string());
  const std::string command = fmt::format(
      "{} {} {} --prompt-tokens {} --gen-tokens {} --reps {} --threads {} --seed {} 2>&1",
      shell_quote(python), shell_quote(script.string()), shell_quote(model.string()),
      options.prompt_tokens, options.gen_tokens, options.reps, omp_get_max_threads(), options.seed);
  CommandResult run = run_command(command);
  // The script prints one JSON object on its last line; anything before it is library noise.
  const size_t brace = run.output.rfind("\n{");
  const std::string last = brace == std::string::npos ? run.output : run.output.substr(brace + 1);
  Json parsed = Json::parse(last, nullptr, false);
  check(run.status == 0 && parsed.is_object(), "peer_transformers.py failed (status {}): {}",
        run.status, run.output.substr(run.output.size() > 2000 ? run.output.size() - 2000 : 0));
  return parsed;
}

Json llama_cpp_peer(const std::filesystem::path& model, const ReportOptions& options) {
  const std::string bench = find_on_path("llama-bench");
  if (bench.empty()) return not_installed("llama-bench is not on PATH");
  if (model.extension() != ".gguf") {
    return Json{{"status", "not applicable"}, {"reason", "llama-bench runs GGUF files only"}};
  }
  const std::string command =
      fmt::format("{} -m {} -p {} -n {} -r {} -t {} -o json 2>/dev/null", shell_quote(bench),
                  shell_quote(model.string()), options.prompt_tokens, options.gen_tokens,
                  options.reps, omp_get_max_threads());
  CommandResult run = run_command(command);
  Json tests = Json::parse(run.output, nullptr, false);
  check(run.status == 0 && tests.is_array(), "llama-bench failed (status {}): {}", run.status,
        run.output.substr(0, 2000));
  Json out{{"status", "ok"}, {"framework", "llama.cpp llama-bench"}, {"device", "cpu"}};
  auto rate = [](const Json& test) {
    Json values = test.value("samples_ts", Json::array());
    return Json{{"mean", test.value("avg_ts", 0.0)},
                {"sd", test.value("stddev_ts", 0.0)},
                {"n", values.size()},
                {"values", values}};
  };
  for (const auto& test : tests) {
    if (test.value("build_commit", "") != "") {
      out["framework"] = "llama.cpp llama-bench " + test.value("build_commit", "");
    }
    if (test.value("n_prompt", 0) > 0 && test.value("n_gen", 0) == 0)
      out["prompt_tok_s"] = rate(test);
    if (test.value("n_gen", 0) > 0 && test.value("n_prompt", 0) == 0) out["gen_tok_s"] = rate(test);
    if (test.contains("model_size")) out["model_size_bytes"] = test["model_size"];
  }
  return out;
}

}  // namespace

Json peer_stage(const std::string& peer, const std::filesystem::path& model,
                const ReportOptions& options) {
  Json out;
  if (peer == "transformers") {
    out = transformers_peer(model, options);
  } else if (peer == "llama.cpp") {
    out = llama_cpp_peer(model, options);
  } else {
    fail("unknown peer '{}' (transformers, llama.cpp)", peer);
  }
  out["peer"] = peer;
  out["model"] = model.filename().string();
  return out;
}

}  // namespace flow2::report
