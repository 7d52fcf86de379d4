// The peers behind flow2/peers.h: how each one's program is found and run, and how what it
// prints becomes a peer entry ({"status", "framework", "device", "prompt_tok_s", "gen_tok_s",
// ...} in flow2 bench's shape). Output that is not what the peer prints when it works is an error
// naming the program and the key.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "flow2/peers.h"

namespace flow2::measure {

using Json = nlohmann::ordered_json;

// A peer's program: `given` (an option), else the environment variable `variable`, else
// `program` on PATH; nullopt when none is there. A given or environment value that names no
// executable is an error naming it.
std::optional<std::string> find_peer_program(const std::filesystem::path& given, const char* option,
                                             const char* variable, const std::string& program);

// {"status": "not measured", "reason": reason}.
Json peer_not_measured(const std::string& reason);

// llama-bench -m MODEL -p PP -n TG -r REPS -t THREADS -o json on a GGUF file.
Json llama_cpp_peer(const std::filesystem::path& model, const PeerOptions& options);

// llama-bench's JSON output (an array of tests) for the asked sizes: the pp and tg tests.
Json parse_llama_bench_output(const std::string& output, int64_t prompt_tokens, int64_t gen_tokens);

// bench/peer_transformers.py with the chosen python.
Json transformers_peer(const std::filesystem::path& model, const PeerOptions& options);

}  // namespace flow2::measure
