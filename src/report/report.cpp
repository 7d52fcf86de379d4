// run_report: the stages in order, each guarded so that one failing keeps the others' results;
// the three files are rewritten after every stage, so an interrupted run leaves what it had.
#include "flow2/report.h"

#include <fmt/format.h>

#include <chrono>
#include <ctime>

#include "flow2/atomic_file.h"
#include "flow2/benchmark.h"
#include "flow2/build_info.h"
#include "flow2/error.h"
#include "flow2/peers.h"
#include "report/sections.h"
#include "report/stages.h"

namespace flow2 {

using report::Json;

namespace {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

ReportOptions with_defaults(ReportOptions o) {
  if (o.prompt_tokens == 0) o.prompt_tokens = o.quick ? 128 : 512;
  if (o.gen_tokens == 0) o.gen_tokens = o.quick ? 32 : 128;
  if (o.reps == 0) o.reps = o.quick ? 2 : 5;
  if (o.finetune_steps == 0) o.finetune_steps = o.quick ? 8 : 30;
  if (o.finetune_seq_len == 0) o.finetune_seq_len = o.quick ? 128 : 256;
  o.peers.prompt_tokens = o.prompt_tokens;
  o.peers.gen_tokens = o.gen_tokens;
  o.peers.reps = o.reps;
  o.peers.seed = o.seed;
  return o;
}

Json benchmark_stage(const ReportOptions& options) {
  // One model at a time: a model that fails to load does not lose the others' numbers.
  Json bench;
  Json errors = Json::array();
  for (const auto& model : options.models) {
    BenchmarkOptions b;
    b.models = {model};
    b.backends = options.backends;
    b.prompt_tokens = options.prompt_tokens;
    b.gen_tokens = options.gen_tokens;
    b.reps = options.reps;
    b.seed = options.seed;
    b.progress = options.progress;
    try {
      Json one = benchmark_json(run_benchmark(b));
      if (bench.is_null()) {
        bench = one;
      } else {
        bench["models"].push_back(one["models"][0]);
      }
    } catch (const std::exception& error) {
      errors.push_back({{"model", model.string()}, {"error", error.what()}});
    }
  }
  if (bench.is_null()) bench = Json{{"models", Json::array()}};
  bench["errors"] = errors;
  return bench;
}

}  // namespace

void write_report_files(const Json& results, const std::filesystem::path& out) {
  std::filesystem::create_directories(out);
  report::Document document = report::build_document(results);
  write_file_atomically(out / "results.json", results.dump(2) + "\n");
  write_file_atomically(out / "report.md", report::render_markdown(document));
  write_file_atomically(out / "report.html", report::render_html(document));
}

ReportOutcome run_report(const ReportOptions& given) {
  ReportOptions options = with_defaults(given);  // .progress is set per stage below
  check(!options.models.empty(), "flow2 report needs at least one --model");
  for (const auto& peer : options.compare) check_peer_name(peer);
  ReportOutcome outcome;
  Json& results = outcome.results;
  std::vector<std::string> models;
  for (const auto& model : options.models) models.push_back(model.string());
  results["report"] = {{"flow2_version", version()},
                       {"created_utc", utc_now()},
                       {"quick", options.quick},
                       {"models", models},
                       {"data", options.data.empty() ? Json() : Json(options.data.string())},
                       {"compare", options.compare},
                       {"prompt_tokens", options.prompt_tokens},
                       {"gen_tokens", options.gen_tokens},
                       {"reps", options.reps},
                       {"seed", options.seed}};
  results["stages"] = Json::object();
  results["failed_stages"] = Json::array();

  struct Stage {
    std::string name;
    std::function<Json()> run;
    std::string key;  // where its result goes in results.json
  };
  std::vector<Stage> stages;
  stages.push_back({"system", report::system_stage, "system"});
  stages.push_back({"benchmark",
                    [&] {
                      Json bench = benchmark_stage(options);
                      Json status{{"status", bench["errors"].empty() ? "ok" : "failed"}};
                      if (!bench["errors"].empty()) {
                        std::string text;
                        for (const auto& e : bench["errors"]) {
                          text += (text.empty() ? "" : "; ") + e.value("model", "") + ": " +
                                  e.value("error", "");
                        }
                        status["error"] = text;
                      }
                      results["benchmark"] = bench;
                      return status;
                    },
                    ""});
  for (const auto& peer : options.compare) {
    for (const auto& model : options.models) {
      stages.push_back({"peer " + peer + " " + model.filename().string(),
                        [&, peer, model] {
                          // A failed peer keeps its row (and error) in the tables too.
                          Json result = measure_peer(peer, model, options.peers);
                          results["peers"].push_back(result);
                          Json status{{"status", result.value("status", "")}};
                          for (const char* key : {"reason", "error"}) {
                            if (result.contains(key)) status[key] = result[key];
                          }
                          return status;
                        },
                        ""});
    }
  }
  if (!options.data.empty()) {
    stages.push_back(
        {"dataset", [&] { return report::dataset_stage(options.models[0], options); }, "dataset"});
    if (options.finetune_steps > 0) {
      stages.push_back({"finetune",
                        [&] { return report::finetune_stage(options.models[0], options); },
                        "finetune"});
    }
  }
  if (!results.contains("peers") && !options.compare.empty()) results["peers"] = Json::array();

  const ProgressCallback given_progress = options.progress;
  for (size_t i = 0; i < stages.size(); ++i) {
    const Stage& stage = stages[i];
    const std::string position = fmt::format("[{}/{}] {}", i + 1, stages.size(), stage.name);
    const auto total = static_cast<int64_t>(stages.size());
    if (given_progress) given_progress({position, static_cast<int64_t>(i), total});
    // A stage's own steps (benchmark repetitions, fine-tuning steps) under its position.
    if (given_progress) {
      options.progress = [&](const ProgressEvent& event) {
        ProgressEvent inner = event;
        inner.text = position + ": " + event.text;
        given_progress(inner);
      };
    }
    const auto start = std::chrono::steady_clock::now();
    Json result = report::guarded(stage.run);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!stage.key.empty()) results[stage.key] = result;
    Json summary{{"status", result.value("status", "")}, {"seconds", seconds}};
    if (result.contains("error")) summary["error"] = result["error"];
    if (result.contains("reason") && !result.value("reason", "").empty()) {
      summary["reason"] = result["reason"];
    }
    results["stages"][stage.name] = summary;
    if (summary["status"] == "failed") {
      results["failed_stages"].push_back(stage.name);
      outcome.failed.push_back(stage.name);
      if (given_progress) {
        given_progress(
            {fmt::format("{} failed: {}", stage.name, summary.value("error", "")), 0, 0, true});
      }
    }
    write_report_files(results, options.out);
  }
  if (given_progress) {
    given_progress(
        {fmt::format("done: {} stage(s), {} failed", stages.size(), outcome.failed.size()),
         static_cast<int64_t>(stages.size()), static_cast<int64_t>(stages.size())});
  }
  outcome.markdown = options.out / "report.md";
  outcome.html = options.out / "report.html";
  outcome.json = options.out / "results.json";
  return outcome;
}

}  // namespace flow2
