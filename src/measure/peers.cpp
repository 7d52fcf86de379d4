// Peers measured beside flow2: Hugging Face transformers through bench/peer_transformers.py, and
// llama.cpp's llama-bench on GGUF files. A peer that is not installed is "not measured".
#include <unistd.h>

#include <cstdlib>
#include <exception>

#include "flow2/error.h"
#include "measure/peers.h"
#include "measure/run_command.h"

namespace flow2 {
namespace measure {

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

}  // namespace measure

void check_peer_name(const std::string& peer) {
  check(peer == "transformers" || peer == "llama.cpp",
        "unknown --compare '{}' (transformers, llama.cpp)", peer);
}

nlohmann::ordered_json measure_peer(const std::string& peer, const std::filesystem::path& model,
                                    const PeerOptions& options) {
  measure::Json out{{"peer", peer}, {"model", model.filename().string()}};
  try {
    check_peer_name(peer);
    out.update(peer == "transformers" ? measure::transformers_peer(model, options)
                                      : measure::llama_cpp_peer(model, options));
  } catch (const std::exception& error) {
    out["status"] = "failed";
    out["error"] = error.what();
  }
  return out;
}

}  // namespace flow2
