// The JSON of a benchmark: every number, including the per-repetition values, so that the
// report and scripts can recompute anything from it.
#include "flow2/benchmark.h"

namespace flow2 {
namespace {

nlohmann::ordered_json measurement_json(const Measurement& m) {
  nlohmann::ordered_json out;
  out["mean"] = m.mean;
  out["sd"] = m.sd;
  out["n"] = m.values.size();
  out["values"] = m.values;
  return out;
}

nlohmann::ordered_json backend_json(const BackendBenchmark& b) {
  nlohmann::ordered_json out;
  out["backend"] = b.backend;
  out["measured"] = b.measured;
  if (!b.measured) {
    out["not_measured"] = b.not_measured;
    return out;
  }
  out["cold_load_s"] = b.cold_load_s;
  out["cold_is_first_load"] = b.cold_is_first_load;
  nlohmann::ordered_json cache;
  cache["attempted"] = b.page_cache.attempted;
  cache["dropped"] = b.page_cache.dropped;
  cache["resident_before_bytes"] = b.page_cache.resident_before_bytes;
  cache["resident_after_bytes"] = b.page_cache.resident_after_bytes;
  if (!b.page_cache.error.empty()) cache["error"] = b.page_cache.error;
  out["page_cache_drop"] = cache;
  out["warm_load_s"] = measurement_json(b.warm_load_s);
  out["rss_after_load_bytes"] = b.rss_after_load_bytes;
  out["peak_rss_bytes"] = b.peak_rss_bytes;
  out["peak_rss_reset"] = b.peak_rss_reset;
  out["gpu_peak_bytes"] =
      b.gpu_peak_bytes ? nlohmann::ordered_json(*b.gpu_peak_bytes) : nlohmann::ordered_json();
  out["prompt_s"] = measurement_json(b.prompt_s);
  out["prompt_tok_s"] = measurement_json(b.prompt_tok_s);
  out["gen_s"] = measurement_json(b.gen_s);
  out["gen_tok_s"] = measurement_json(b.gen_tok_s);
  out["ttft_s"] = measurement_json(b.ttft_s);
  return out;
}

}  // namespace

nlohmann::ordered_json model_summary_json(const ModelSummary& s) {
  nlohmann::ordered_json out;
  out["path"] = s.path;
  out["name"] = s.name;
  out["architecture"] = s.architecture;
  out["layers"] = s.layers;
  out["hidden_size"] = s.hidden_size;
  out["vocab_size"] = s.vocab_size;
  out["parameters"] = s.parameters;
  out["bytes_on_disk"] = s.bytes_on_disk;
  out["weight_bytes"] = s.weight_bytes;
  out["dtype"] = s.dtype;
  out["parameters_by_dtype"] = s.parameters_by_dtype;
  out["bits_per_weight"] = s.bits_per_weight;
  return out;
}

nlohmann::ordered_json benchmark_json(const BenchmarkResult& result) {
  nlohmann::ordered_json out;
  out["prompt_tokens"] = result.prompt_tokens;
  out["gen_tokens"] = result.gen_tokens;
  out["reps"] = result.reps;
  out["seed"] = result.seed;
  out["threads"] = result.threads;
  out["models"] = nlohmann::ordered_json::array();
  for (const auto& model : result.models) {
    nlohmann::ordered_json entry;
    entry["model"] = model_summary_json(model.model);
    entry["backends"] = nlohmann::ordered_json::array();
    for (const auto& backend : model.backends) entry["backends"].push_back(backend_json(backend));
    out["models"].push_back(entry);
  }
  return out;
}

}  // namespace flow2
