// flow2 version: the build's version and the devices it can compute on.
#include <fmt/format.h>

#include "commands.h"
#include "flow2/build_info.h"

namespace flow2::cli {

void add_version_command(CLI::App& app) {
  auto* command = app.add_subcommand("version", "Print the version and available backends");
  command->callback([] {
    fmt::print("flow2 {}\n", version());
    fmt::print("backends: cpu{}\n", built_with_cuda() ? ", cuda (built)" : "");
    if (built_with_cuda()) fmt::print("cuda devices: {}\n", cuda_device_count());
  });
}

}  // namespace flow2::cli
