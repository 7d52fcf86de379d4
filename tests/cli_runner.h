// Runs the flow2 program as a user would and captures what it prints and its exit status.
#pragma once

#include <string>

namespace flow2::testing {

struct CliResult {
  int status = -1;
  std::string output;  // stdout and stderr together
  std::string stdout_text;
};

// `arguments` is appended to the program path as a shell command line; `input` is its stdin.
CliResult run_cli(const std::string& arguments, const std::string& input = "");

}  // namespace flow2::testing
