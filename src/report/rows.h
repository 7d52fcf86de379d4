// results.json flattened into one row per (model, backend or peer): what the tables, charts,
// findings and recommendations read. Missing numbers are NaN.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "report/stages.h"

namespace flow2::report {

struct PerfRow {
  std::string model;
  std::string backend;  // "cpu", "cuda", or the peer's name ("llama.cpp", "transformers")
  std::string source;   // "flow2", or the peer framework with its version
  std::string device;   // where it ran: the backend, or the device the peer reports
  bool peer = false;
  bool measured = false;
  bool failed = false;  // a peer that ran and failed (reason holds the error)
  std::string reason;   // why not measured
  double bytes_on_disk = NAN, weight_bytes = NAN, parameters = NAN, bits_per_weight = NAN;
  std::string dtype;
  double cold_load_s = NAN, warm_load_s = NAN, warm_load_sd = NAN;
  double rss_after_load = NAN, peak_rss = NAN;
  double pp = NAN, pp_sd = NAN, tg = NAN, tg_sd = NAN, ttft = NAN, ttft_sd = NAN;
  bool page_cache_dropped = false;

  // "m.gguf (flow2 cpu)", "m.gguf (llama.cpp llama-bench 0c1e570)": always names who ran it.
  std::string label() const { return model + " (" + (peer ? source : "flow2 " + backend) + ")"; }
};

std::vector<PerfRow> performance_rows(const Json& results);
// Only the measured rows (optionally only flow2's own).
std::vector<PerfRow> measured_rows(const Json& results, bool flow2_only);

// `object[key]`, or an empty object when `object` is no object or lacks the key (or it is null).
const Json& field(const Json& object, const std::string& key);

inline bool known(double value) {
  return !std::isnan(value);
}

}  // namespace flow2::report
