#include "config_options.h"

#include <algorithm>

#include "flow2/config_file.h"
#include "flow2/error.h"

namespace flow2::cli {
namespace {

std::string where(const std::string& path, const ConfigEntry& entry) {
  return entry.line > 0 ? path + ":" + std::to_string(entry.line) : path;
}

}  // namespace

void apply_config_file(CLI::App& command, const std::string& path) {
  for (const ConfigEntry& entry : read_config_file(path)) {
    std::string name = entry.key;
    std::replace(name.begin(), name.end(), '_', '-');
    check(name != "config", "{}: a config file cannot name another", where(path, entry));
    CLI::Option* option = command.get_option_no_throw("--" + name);
    check(option != nullptr, "{}: unknown option '{}' for flow2 {}", where(path, entry), entry.key,
          command.get_name());
    // The negated spelling of a flag ("no-mask-prompt") shares the option of its positive one.
    if (option->count() > 0) continue;
    if (option->get_expected_max() > 1) {
      std::vector<std::string> values = entry.values;
      option->add_result(values);
    } else {
      check(!entry.is_list && entry.values.size() == 1, "{}: '{}' takes one value",
            where(path, entry), entry.key);
      std::string value = entry.values.front();
      // A flag given by the name of its negation takes the opposite value.
      if (option->get_expected_min() == 0) value = option->get_flag_value(name, value);
      option->add_result(value);
    }
    try {
      option->run_callback();
    } catch (const CLI::Error& error) {
      fail("{}: '{}': {}", where(path, entry), entry.key, error.what());
    }
  }
}

}  // namespace flow2::cli
