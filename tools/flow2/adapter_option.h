// --adapter DIR: a PEFT LoRA adapter applied to the model at load (generate, chat, perplexity,
// eval).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "flow2/model.h"

namespace flow2::cli {

void add_adapter_option(CLI::App& command, std::string& adapter);

// The model of `checkpoint`, with the adapter in `adapter` (a directory) unless it is empty.
std::unique_ptr<Model> load_model(const Checkpoint& checkpoint, Backend& backend,
                                  const std::string& adapter);

}  // namespace flow2::cli
