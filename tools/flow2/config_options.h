// --config FILE for a subcommand: option values from a JSON or YAML file (flow2/config_file.h)
// for every flag the command line did not give, so that the command line wins.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace flow2::cli {

// Keys are flag names without dashes, with '_' or '-' between words ("learning_rate");
// booleans set flags ("mask_prompt: false" is --no-mask-prompt). Unknown keys are errors.
void apply_config_file(CLI::App& command, const std::string& path);

}  // namespace flow2::cli
