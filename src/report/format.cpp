#include "report/format.h"

#include <fmt/format.h>

namespace flow2::report {

std::string fixed(double value, int digits) {
  return fmt::format("{:.{}f}", value, digits);
}

std::string megabytes(double bytes) {
  return fixed(bytes / 1e6, 1) + " MB";
}

std::string seconds(double value) {
  return fixed(value, 3) + " s";
}

std::string rate(double tokens_per_s) {
  return fixed(tokens_per_s, 1) + " tok/s";
}

std::string percent(double share) {
  return fixed(100.0 * share, 2) + "%";
}

std::string millions(double count) {
  return fixed(count / 1e6, 2) + " M";
}

std::string mean_sd(const nlohmann::ordered_json& m, int digits) {
  return fixed(m.value("mean", 0.0), digits) + " ± " + fixed(m.value("sd", 0.0), digits);
}

}  // namespace flow2::report
