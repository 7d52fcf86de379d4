#include "peer_options.h"

namespace flow2::cli {

void add_peer_options(CLI::App& command, std::vector<std::string>& compare, PeerOptions& peers) {
  command
      .add_option("--compare", compare,
                  "Peer to measure too: transformers, llama.cpp (llama-bench, GGUF files); "
                  "repeatable")
      ->check(CLI::IsMember({"transformers", "llama.cpp"}));
  command.add_option("--peer-script", peers.peer_script, "bench/peer_transformers.py");
  command.add_option("--python", peers.python,
                     "Python for --compare transformers (default $FLOW2_PYTHON, else python3)");
  command.add_option("--llama-bench", peers.llama_bench,
                     "llama-bench for --compare llama.cpp (default $LLAMA_BENCH, else PATH)");
}

}  // namespace flow2::cli
