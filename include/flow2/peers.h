// The peers that `flow2 bench --compare` and `flow2 report --compare` measure beside flow2:
// llama.cpp's llama-bench on GGUF files and Hugging Face transformers through
// bench/peer_transformers.py, with flow2's sizes and threads on the same model.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace flow2 {

// Throws unless `peer` is one --compare takes: "transformers" or "llama.cpp".
void check_peer_name(const std::string& peer);

struct PeerOptions {
  // The programs the peers run. Empty: $FLOW2_PYTHON, else python3 on PATH; $LLAMA_BENCH, else
  // llama-bench on PATH. A peer whose program is not found is "not measured"; a program given
  // here or in the environment that is not executable fails the peer.
  std::filesystem::path python, llama_bench;
  // bench/peer_transformers.py; empty: looked up beside the source tree this flow2 was built in.
  std::filesystem::path peer_script;
  // The sizes, as flow2's benchmark runs them.
  int64_t prompt_tokens = 512, gen_tokens = 128, reps = 5;
  uint64_t seed = 0;
};

// One peer on one model, never throwing: {"peer", "model" (the file name), "status", ...} with
// status "ok" (the peer's numbers in flow2 bench's shape: "framework" with its version,
// "device", "prompt_tok_s", "gen_tok_s", and where the peer measures them "cold_load_s",
// "warm_load_s", "ttft_s", "peak_rss_bytes"), "not measured" (+ "reason") or "failed"
// (+ "error").
nlohmann::ordered_json measure_peer(const std::string& peer, const std::filesystem::path& model,
                                    const PeerOptions& options);

}  // namespace flow2
