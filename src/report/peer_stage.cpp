// Peers measured beside flow2: Hugging Face transformers through bench/peer_transformers.py, and
// llama.cpp's llama-bench on GGUF files. A peer that is not installed is "not measured".
#include <unistd.h>

#include <cstdlib>

#include "flow2/error.h"
#include "report/peers.h"
#include "report/run_command.h"
#include "report/stages.h"

namespace flow2::report {

std::optional<std::string> find_peer_program(const std::filesystem::path& given, const char* option,
                                             const char* variable, const std::string& program) {
  std::string chosen = given.string();
  std::string origin = option;
  if (chosen.empty()) {
    const char* value = std::getenv(variable);
    if (value && *value) {
      chosen = value;
      origin = std::string("$") + variable;
    }
  }
  if (chosen.empty()) {
    std::string found = find_on_path(program);
    return found.empty() ? std::nullopt : std::optional(found);
  }
  // A bare name is looked up on PATH, as the shell would.
  std::string path = chosen.find('/') == std::string::npos ? find_on_path(chosen) : chosen;
  check(!path.empty() && ::access(path.c_str(), X_OK) == 0 && !std::filesystem::is_directory(path),
        "{} {}: no such executable file", origin, chosen);
  return path;
}

Json peer_not_measured(const std::string& reason) {
  return Json{{"status", "not measured"}, {"reason", reason}};
}

Json peer_stage(const std::string& peer, const std::filesystem::path& model,
                const ReportOptions& options) {
  if (peer == "transformers") return transformers_peer(model, options);
  if (peer == "llama.cpp") return llama_cpp_peer(model, options);
  fail("unknown peer '{}' (transformers, llama.cpp)", peer);
}

}  // namespace flow2::report
