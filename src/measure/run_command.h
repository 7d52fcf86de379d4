// Running helper programs (nvidia-smi, python3, llama-bench) and capturing what they print.
#pragma once

#include <string>

namespace flow2::measure {

struct CommandResult {
  int status = -1;           // exit status; -1 when it could not run or was killed
  std::string output;        // stdout
  std::string error_output;  // stderr, unless the command line redirects it itself
};

CommandResult run_command(const std::string& command_line);

// The full path of `program` on PATH, or "" when it is not there.
std::string find_on_path(const std::string& program);

// 'text' for a POSIX shell.
std::string shell_quote(const std::string& text);

// The last `count` bytes of `text` (all of it when shorter), for error messages.
std::string tail(const std::string& text, size_t count = 2000);

}  // namespace flow2::measure
