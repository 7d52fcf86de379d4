// How the report prints numbers: one function per kind, used by every section, so that the
// tests can read a number back and compare it with results.json at the printed precision.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace flow2::report {

std::string fixed(double value, int digits);  // "12.35"
std::string megabytes(double bytes);          // "134.2 MB" (10^6 bytes)
std::string seconds(double value);            // "0.123 s"
std::string rate(double tokens_per_s);        // "182.4 tok/s"
std::string percent(double share);            // 0.0123 -> "1.23%"
std::string millions(double count);           // "134.52 M"
// {"mean", "sd"} as "182.4 ± 3.1" with `digits` decimals.
std::string mean_sd(const nlohmann::ordered_json& measurement, int digits);

}  // namespace flow2::report
