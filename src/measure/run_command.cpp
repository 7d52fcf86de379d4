#include "measure/run_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace flow2::measure {

CommandResult run_command(const std::string& command_line) {
  CommandResult result;
  // stderr goes to a temporary file, so that stdout stays what the program meant to print.
  std::string errors = (std::filesystem::temp_directory_path() / "flow2-stderr-XXXXXX").string();
  const int descriptor = ::mkstemp(errors.data());
  std::string full = command_line;
  if (descriptor >= 0) {
    ::close(descriptor);
    full = "{ " + command_line + "\n} 2>" + shell_quote(errors);
  }
  std::FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe) {
    char buffer[4096];
    size_t count;
    while ((count = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
      result.output.append(buffer, count);
    const int status = ::pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  if (descriptor >= 0) {
    std::ifstream in(errors, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    result.error_output = text.str();
    std::filesystem::remove(errors);
  }
  return result;
}

std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::stringstream directories(path);
  std::string directory;
  while (std::getline(directories, directory, ':')) {
    if (directory.empty()) continue;
    std::filesystem::path candidate = std::filesystem::path(directory) / program;
    if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) {
      return candidate.string();
    }
  }
  return "";
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string tail(const std::string& text, size_t count) {
  return text.size() > count ? text.substr(text.size() - count) : text;
}

}  // namespace flow2::measure
