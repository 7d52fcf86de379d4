#include "cli_runner.h"

#include <sys/wait.h>

#include <cstdio>

#include "test_support.h"

namespace flow2::testing {

CliResult run_cli(const std::string& arguments, const std::string& input) {
  TempDir dir;
  auto in = dir / "stdin";
  auto out = dir / "stdout";
  auto err = dir / "stderr";
  write_file(in, input);
  std::string command = std::string(FLOW2_CLI_PATH) + " " + arguments + " <" + in.string() + " >" +
                        out.string() + " 2>" + err.string();
  int raw = std::system(command.c_str());
  CliResult result;
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  result.stdout_text = read_file(out);
  result.output = result.stdout_text + read_file(err);
  return result;
}

}  // namespace flow2::testing
