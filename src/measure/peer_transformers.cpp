// Hugging Face transformers as a peer: bench/peer_transformers.py run with the chosen python on
// the same model, sizes and threads; its one JSON object checked and kept.
#include <fmt/format.h>
#include <omp.h>

#include "flow2/error.h"
#include "measure/peers.h"
#include "measure/run_command.h"

namespace flow2::measure {
namespace {

std::filesystem::path peer_script(const PeerOptions& options) {
  if (!options.peer_script.empty()) return options.peer_script;
  return std::filesystem::path(FLOW2_SOURCE_DIR) / "bench" / "peer_transformers.py";
}

// The last non-empty line of `text`.
std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of("\r\n \t");
  if (end == std::string::npos) return "";
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

void check_measurement(const Json& out, const std::string& script, const char* key) {
  const bool ok = out.contains(key) && out[key].is_object() && out[key].contains("mean") &&
                  out[key]["mean"].is_number() && out[key].contains("values") &&
                  out[key]["values"].is_array();
  check(ok, "{} output: key '{}' is missing or not {{\"mean\", \"sd\", \"values\"}}", script, key);
}

void check_size(const Json& out, const std::string& script, const char* key, int64_t asked) {
  check(out.contains(key) && out[key].is_number_integer() && out[key].get<int64_t>() == asked,
        "{} output: key '{}' is {} where {} was asked", script, key,
        out.contains(key) ? out[key].dump() : "missing", asked);
}

}  // namespace

Json transformers_peer(const std::filesystem::path& model, const PeerOptions& options) {
  const auto python = find_peer_program(options.python, "--python", "FLOW2_PYTHON", "python3");
  if (!python) {
    return peer_not_measured(
        "python3 is not installed (not on PATH; set FLOW2_PYTHON or --python)");
  }
  const auto script = peer_script(options);
  check(std::filesystem::exists(script), "{}: the transformers peer script is missing",
        script.string());
  const std::string name = script.filename().string();
  const std::string command = fmt::format(
      "{} {} {} --prompt-tokens {} --gen-tokens {} --reps {} --threads {} --seed {}",
      shell_quote(*python), shell_quote(script.string()), shell_quote(model.string()),
      options.prompt_tokens, options.gen_tokens, options.reps, omp_get_max_threads(), options.seed);
  CommandResult run = run_command(command);
  check(run.status == 0, "{} {} failed (exit status {}): {}", *python, name, run.status,
        tail(run.error_output.empty() ? run.output : run.error_output));
  const std::string line = last_line(run.output);
  Json out = Json::parse(line, nullptr, false);
  check(out.is_object(), "{} printed no JSON object on its last line: '{}'; its stderr ends: {}",
        name, line.substr(0, 300), tail(run.error_output, 500));
  const std::string status = out.value("status", "");
  if (status == "not installed") {
    return peer_not_measured(
        fmt::format("not installed: {} (python: {})", out.value("reason", ""), *python));
  }
  check(status == "ok", "{} output: status '{}' ({})", name, status, out.value("reason", ""));
  for (const char* key : {"prompt_tok_s", "ttft_s", "warm_load_s"}) {
    check_measurement(out, name, key);
  }
  if (options.gen_tokens > 0) check_measurement(out, name, "gen_tok_s");
  check_size(out, name, "prompt_tokens", options.prompt_tokens);
  check_size(out, name, "gen_tokens", options.gen_tokens);
  check_size(out, name, "reps", options.reps);
  out["program"] = *python;
  return out;
}

}  // namespace flow2::measure
