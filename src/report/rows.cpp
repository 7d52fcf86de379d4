#include "report/rows.h"

namespace flow2::report {
namespace {

double number(const Json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_number()) return NAN;
  return object[key].get<double>();
}

double mean(const Json& object, const char* key) {
  return object.is_object() && object.contains(key) ? number(object[key], "mean") : NAN;
}

double sd(const Json& object, const char* key) {
  return object.is_object() && object.contains(key) ? number(object[key], "sd") : NAN;
}

void fill_model(PerfRow& row, const Json& model) {
  row.model = model.value("name", "");
  row.bytes_on_disk = number(model, "bytes_on_disk");
  row.weight_bytes = number(model, "weight_bytes");
  row.parameters = number(model, "parameters");
  row.bits_per_weight = number(model, "bits_per_weight");
  row.dtype = model.value("dtype", "");
}

void fill_speeds(PerfRow& row, const Json& b) {
  row.warm_load_s = mean(b, "warm_load_s");
  row.warm_load_sd = sd(b, "warm_load_s");
  row.pp = mean(b, "prompt_tok_s");
  row.pp_sd = sd(b, "prompt_tok_s");
  row.tg = mean(b, "gen_tok_s");
  row.tg_sd = sd(b, "gen_tok_s");
  row.ttft = mean(b, "ttft_s");
  row.ttft_sd = sd(b, "ttft_s");
  row.peak_rss = number(b, "peak_rss_bytes");
  row.cold_load_s = number(b, "cold_load_s");
}

}  // namespace

const Json& field(const Json& object, const std::string& key) {
  // An empty object rather than null, so that value() and iteration work on what is missing.
  static const Json missing = Json::object();
  if (!object.is_object()) return missing;
  auto found = object.find(key);
  return found == object.end() || found->is_null() ? missing : *found;
}

std::vector<PerfRow> performance_rows(const Json& results) {
  std::vector<PerfRow> rows;
  const Json& bench = results.contains("benchmark") ? results["benchmark"] : Json();
  std::vector<PerfRow> models;
  if (bench.is_object() && bench.contains("models")) {
    for (const auto& entry : bench["models"]) {
      PerfRow base;
      base.source = "flow2";
      fill_model(base, entry["model"]);
      models.push_back(base);
      for (const auto& b : entry["backends"]) {
        PerfRow row = base;
        row.backend = b.value("backend", "");
        row.device = row.backend;
        row.measured = b.value("measured", false);
        row.reason = b.value("not_measured", "");
        if (row.measured) {
          fill_speeds(row, b);
          row.rss_after_load = number(b, "rss_after_load_bytes");
          row.page_cache_dropped =
              b.contains("page_cache_drop") && b["page_cache_drop"].value("dropped", false);
        }
        rows.push_back(row);
      }
    }
  }
  if (results.contains("peers")) {
    for (const auto& peer : results["peers"]) {
      PerfRow row;
      for (const auto& m : models) {
        if (m.model == peer.value("model", "")) row = m;
      }
      row.model = peer.value("model", "");
      row.peer = true;
      row.backend = peer.value("peer", "");
      row.source = peer.value("framework", row.backend);
      row.device = peer.value("device", "");
      row.measured = peer.value("status", "") == "ok";
      row.failed = peer.value("status", "") == "failed";
      row.reason = row.failed ? peer.value("error", "") : peer.value("reason", "");
      if (row.measured) {
        fill_speeds(row, peer);
        if (peer.contains("dtype")) row.dtype = peer.value("dtype", "");
      }
      rows.push_back(row);
    }
  }
  return rows;
}

std::vector<PerfRow> measured_rows(const Json& results, bool flow2_only) {
  std::vector<PerfRow> out;
  for (auto& row : performance_rows(results)) {
    if (row.measured && (!flow2_only || !row.peer)) out.push_back(row);
  }
  return out;
}

}  // namespace flow2::report
