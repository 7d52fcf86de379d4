// Running helper programs (nvidia-smi, python3, llama-bench) and capturing what they print.
#pragma once

#include <string>

namespace flow2::report {

struct CommandResult {
  int status = -1;     // exit status; -1 when it could not run
  std::string output;  // stdout (stderr too when the command line redirects it)
};

CommandResult run_command(const std::string& command_line);

// The full path of `program` on PATH, or "" when it is not there.
std::string find_on_path(const std::string& program);

// 'text' for a POSIX shell.
std::string shell_quote(const std::string& text);

}  // namespace flow2::report
