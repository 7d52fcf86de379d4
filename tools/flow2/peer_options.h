// --compare PEER (repeatable), --python, --llama-bench and --peer-script: the peers measured
// beside flow2 and the programs they run (bench, report).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "flow2/peers.h"

namespace flow2::cli {

void add_peer_options(CLI::App& command, std::vector<std::string>& compare, PeerOptions& peers);

}  // namespace flow2::cli
