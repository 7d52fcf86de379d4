// flow2 report --compare with stand-in peers: a fake llama-bench and a fake python print the
// output the real ones printed on the default model (tests/data/peers, captured with the
// commands in its README). The numbers must reach results.json and the tables of report.md and
// report.html labelled by the peer's framework; the peers must be called with the report's
// sizes; a peer that is not installed is "not measured" without failing the report; a peer
// that prints something else fails its stage with an error naming the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>

#include "cli_runner.h"
#include "fake_peers.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;
using testing::argument;
using testing::data_path;
using testing::Environment;
using testing::lines_of;
using testing::llama_test;
using testing::mean_sd;
using testing::read_file;
using testing::run_cli;
using testing::TempDir;
using testing::write_fake_program;
using testing::write_file;

// The cells of the Markdown table row that starts with `prefix` ("| a | b |" -> {"a", "b"}).
std::vector<std::string> markdown_row(const std::string& markdown, const std::string& prefix) {
  for (const auto& line : lines_of(markdown)) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::vector<std::string> cells;
    size_t start = 1, end;
    while ((end = line.find('|', start)) != std::string::npos) {
      std::string cell = line.substr(start, end - start);
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      cells.push_back(cell);
      start = end + 1;
    }
    return cells;
  }
  return {};
}

// The table's columns: model, source, backend, size, params, quantization, cold load, warm load,
// peak RSS, TTFT, pp, tg.
enum Column { kSource = 1, kBackend = 2, kColdLoad = 6, kWarmLoad, kPeakRss, kTtft, kPp, kTg };

class ReportPeers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    testing::tiny_gguf(*dir_);
    testing::write_fake_peers(*dir_);
    Environment environment;
    environment.set("PATH", (*dir_ / "bin").string() + ":" + std::getenv("PATH"));
    environment.set("LLAMA_BENCH", std::nullopt);
    environment.set("FLOW2_PYTHON", (*dir_ / "bin" / "fake-python").string());
    // --quick: pp128 / tg32 / 2 repetitions, the sizes the captured outputs were measured with.
    result_ = new testing::CliResult(
        run_cli("report --model " + model().string() + " --out " + (*dir_ / "out").string() +
                " --quick --device cpu --compare llama.cpp --compare transformers"));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete dir_;
  }
  static std::filesystem::path model() { return *dir_ / "tiny.gguf"; }
  static json results() { return json::parse(read_file(*dir_ / "out" / "results.json")); }
  static json peer(const std::string& name) {
    const json all = results();
    for (const auto& entry : all["peers"]) {
      if (entry["peer"] == name) return entry;
    }
    return json();
  }
  static std::string markdown() { return read_file(*dir_ / "out" / "report.md"); }
  static std::string html() { return read_file(*dir_ / "out" / "report.html"); }

  static TempDir* dir_;
  static testing::CliResult* result_;
};
TempDir* ReportPeers::dir_ = nullptr;
testing::CliResult* ReportPeers::result_ = nullptr;

TEST_F(ReportPeers, BothPeersAreMeasured) {
  ASSERT_EQ(result_->status, 0) << result_->output;
  json r = results();
  for (const char* stage : {"peer llama.cpp tiny.gguf", "peer transformers tiny.gguf"}) {
    EXPECT_EQ(r["stages"][stage]["status"], "ok") << stage << ": " << r["stages"].dump();
  }
}

TEST_F(ReportPeers, LlamaBenchIsCalledWithTheReportsSizes) {
  const auto args = lines_of(read_file(*dir_ / "llama-bench.args"));
  EXPECT_EQ(argument(args, "-m"), model().string());
  EXPECT_EQ(argument(args, "-p"), "128");
  EXPECT_EQ(argument(args, "-n"), "32");
  EXPECT_EQ(argument(args, "-r"), "2");
  EXPECT_EQ(argument(args, "-o"), "json");
  EXPECT_EQ(argument(args, "-t"), std::to_string(results()["benchmark"]["threads"].get<int>()));
}

TEST_F(ReportPeers, LlamaBenchNumbersReachResultsJson) {
  const json tests = json::parse(read_file(data_path("peers/llama_bench_smollm2_q4_1.json")));
  const json pp = llama_test(tests, 128, 0), tg = llama_test(tests, 0, 32);
  ASSERT_FALSE(pp.is_null());
  ASSERT_FALSE(tg.is_null());
  const json entry = peer("llama.cpp");
  ASSERT_EQ(entry["status"], "ok") << entry.dump();
  EXPECT_EQ(entry["framework"], "llama.cpp llama-bench " + pp["build_commit"].get<std::string>());
  EXPECT_EQ(entry["model"], "tiny.gguf");
  EXPECT_EQ(entry["device"], "cpu");
  EXPECT_DOUBLE_EQ(entry["prompt_tok_s"]["mean"], pp["avg_ts"].get<double>());
  EXPECT_DOUBLE_EQ(entry["prompt_tok_s"]["sd"], pp["stddev_ts"].get<double>());
  EXPECT_EQ(entry["prompt_tok_s"]["values"], pp["samples_ts"]);
  EXPECT_DOUBLE_EQ(entry["gen_tok_s"]["mean"], tg["avg_ts"].get<double>());
  EXPECT_EQ(entry["gen_tok_s"]["values"], tg["samples_ts"]);
  EXPECT_EQ(entry["threads"], pp["n_threads"]);
}

TEST_F(ReportPeers, LlamaBenchRowIsInBothTablesLabelledLlamaCpp) {
  const json tests = json::parse(read_file(data_path("peers/llama_bench_smollm2_q4_1.json")));
  const json pp = llama_test(tests, 128, 0), tg = llama_test(tests, 0, 32);
  const std::string source = "llama.cpp llama-bench " + pp["build_commit"].get<std::string>();
  const auto row = markdown_row(markdown(), "| tiny.gguf | " + source + " |");
  ASSERT_EQ(row.size(), 12u) << markdown();
  EXPECT_EQ(row[kBackend], "cpu");
  EXPECT_EQ(row[kPp], mean_sd(pp["avg_ts"], pp["stddev_ts"], 1));
  EXPECT_EQ(row[kTg], mean_sd(tg["avg_ts"], tg["stddev_ts"], 1));
  for (Column missing : {kColdLoad, kWarmLoad, kPeakRss, kTtft}) {
    EXPECT_EQ(row[missing], "n/a") << "llama-bench does not measure column " << missing;
  }
  EXPECT_NE(html().find("<tr><td>tiny.gguf</td><td>" + source + "</td><td>cpu</td>"),
            std::string::npos);
  // The charts name the peer too.
  EXPECT_NE(html().find("tiny.gguf (" + source + ")"), std::string::npos);
  EXPECT_NE(html().find("tiny.gguf (flow2 cpu)"), std::string::npos);
}

TEST_F(ReportPeers, TransformersIsCalledWithThePeerScriptAndSizes) {
  const auto args = lines_of(read_file(*dir_ / "python.args"));
  ASSERT_GE(args.size(), 2u);
  EXPECT_EQ(std::filesystem::path(args[0]).filename(), "peer_transformers.py");
  EXPECT_TRUE(std::filesystem::exists(args[0])) << args[0];
  EXPECT_EQ(args[1], model().string());
  EXPECT_EQ(argument(args, "--prompt-tokens"), "128");
  EXPECT_EQ(argument(args, "--gen-tokens"), "32");
  EXPECT_EQ(argument(args, "--reps"), "2");
}

TEST_F(ReportPeers, TransformersNumbersReachBothTablesLabelledTransformers) {
  const json captured =
      json::parse(read_file(data_path("peers/peer_transformers_smollm2_q4_1.json")));
  const json entry = peer("transformers");
  ASSERT_EQ(entry["status"], "ok") << entry.dump();
  EXPECT_EQ(entry["program"], (*dir_ / "bin" / "fake-python").string());
  for (const char* key : {"prompt_tok_s", "gen_tok_s", "ttft_s", "warm_load_s"}) {
    EXPECT_EQ(entry[key], captured[key]) << key;
  }
  const std::string source = captured["framework"];
  ASSERT_EQ(source.rfind("transformers ", 0), 0u) << source;
  const auto row = markdown_row(markdown(), "| tiny.gguf | " + source + " |");
  ASSERT_EQ(row.size(), 12u) << markdown();
  EXPECT_EQ(row[kBackend], "cpu");
  EXPECT_EQ(row[5], captured["dtype"].get<std::string>());  // transformers dequantizes GGUF weights
  EXPECT_EQ(row[kPp], mean_sd(captured["prompt_tok_s"]["mean"], captured["prompt_tok_s"]["sd"], 1));
  EXPECT_EQ(row[kTg], mean_sd(captured["gen_tok_s"]["mean"], captured["gen_tok_s"]["sd"], 1));
  EXPECT_EQ(row[kTtft], mean_sd(captured["ttft_s"]["mean"], captured["ttft_s"]["sd"], 3));
  EXPECT_EQ(row[kWarmLoad],
            mean_sd(captured["warm_load_s"]["mean"], captured["warm_load_s"]["sd"], 3));
  char peak[32];
  std::snprintf(peak, sizeof peak, "%.1f MB", captured["peak_rss_bytes"].get<double>() / 1e6);
  EXPECT_EQ(row[kPeakRss], peak);
  EXPECT_NE(html().find("<tr><td>tiny.gguf</td><td>" + source + "</td><td>cpu</td>"),
            std::string::npos);
}

TEST_F(ReportPeers, ProgressLinesAreParseableWithoutATerminal) {
  // stderr is a file here: one "report: ..." line per step, no carriage returns or escapes.
  const std::string stderr_text = result_->output.substr(result_->stdout_text.size());
  EXPECT_EQ(stderr_text.find('\r'), std::string::npos);
  EXPECT_EQ(stderr_text.find('\x1b'), std::string::npos);
  const auto lines = lines_of(stderr_text);
  ASSERT_FALSE(lines.empty());
  const std::regex form(R"(report: (\[\d+/4\] .+|done: 4 stage\(s\), 0 failed))");
  for (const auto& line : lines) EXPECT_TRUE(std::regex_match(line, form)) << line;
  // [1/4] system, [2/4] benchmark, [3/4] and [4/4] the peers, then "done".
  for (const char* expected :
       {"report: [1/4] system", "report: [2/4] benchmark", "report: [3/4] peer llama.cpp tiny.gguf",
        "report: [4/4] peer transformers tiny.gguf", "report: done: 4 stage(s), 0 failed"}) {
    EXPECT_NE(std::find(lines.begin(), lines.end(), expected), lines.end()) << expected;
  }
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "report: [2/4] benchmark: model 1/1 tiny.gguf cpu: warm load 2/2"),
            lines.end());
}

// A report with only a peer stage of interest: tiny sizes, the peer given by the environment.
testing::CliResult report_with(const TempDir& dir, const std::string& peer_flags) {
  return run_cli("report --model " + testing::tiny_gguf(dir).string() + " --out " +
                 (dir / "out").string() +
                 " --device cpu --prompt-tokens 8 --gen-tokens 4 --reps 1 " + peer_flags);
}

TEST(ReportPeerErrors, MissingLlamaBenchIsNotMeasuredAndTheReportSucceeds) {
  TempDir dir;
  Environment environment;
  testing::hide_peers(environment, dir);
  auto result = report_with(dir, "--compare llama.cpp");
  ASSERT_EQ(result.status, 0) << result.output;
  json r = json::parse(read_file(dir / "out" / "results.json"));
  const json& stage = r["stages"]["peer llama.cpp tiny.gguf"];
  EXPECT_EQ(stage["status"], "not measured") << stage.dump();
  EXPECT_NE(stage["reason"].get<std::string>().find("not installed"), std::string::npos);
  EXPECT_EQ(r["stages"]["benchmark"]["status"], "ok");
  EXPECT_TRUE(r["failed_stages"].empty());
  const auto row = markdown_row(read_file(dir / "out" / "report.md"), "| tiny.gguf | llama.cpp |");
  ASSERT_GT(row.size(), static_cast<size_t>(kColdLoad));
  EXPECT_EQ(row[kColdLoad].rfind("not measured: llama-bench is not installed", 0), 0u)
      << row[kColdLoad];
}

TEST(ReportPeerErrors, PeerNotInstalledInPythonIsNotMeasured) {
  TempDir dir;
  write_file(
      dir / "not-installed.json",
      R"({"status": "not installed", "reason": "python package torch: No module named 'torch'"})"
      "\n");
  write_fake_program(dir / "python", dir / "python.args", dir / "not-installed.json");
  auto result = report_with(dir, "--compare transformers --python " + (dir / "python").string());
  ASSERT_EQ(result.status, 0) << result.output;
  json r = json::parse(read_file(dir / "out" / "results.json"));
  const json& stage = r["stages"]["peer transformers tiny.gguf"];
  EXPECT_EQ(stage["status"], "not measured") << stage.dump();
  EXPECT_NE(stage["reason"].get<std::string>().find("No module named 'torch'"), std::string::npos);
}

TEST(ReportPeerErrors, UnexpectedLlamaBenchOutputFailsItsStageNamingTheKey) {
  TempDir dir;
  write_file(dir / "bad.json", R"([{"n_prompt": 8, "n_gen": 0, "stddev_ts": 1.0}])");
  write_fake_program(dir / "llama-bench", dir / "args", dir / "bad.json");
  Environment environment;
  environment.set("LLAMA_BENCH", (dir / "llama-bench").string());
  auto result = report_with(dir, "--compare llama.cpp");
  EXPECT_EQ(result.status, 1) << result.output;
  json r = json::parse(read_file(dir / "out" / "results.json"));
  const json& stage = r["stages"]["peer llama.cpp tiny.gguf"];
  EXPECT_EQ(stage["status"], "failed");
  EXPECT_NE(stage["error"].get<std::string>().find("'avg_ts'"), std::string::npos) << stage.dump();
  EXPECT_EQ(r["stages"]["benchmark"]["status"], "ok");  // the other stages keep their results
  const auto row = markdown_row(read_file(dir / "out" / "report.md"), "| tiny.gguf | llama.cpp |");
  ASSERT_GT(row.size(), static_cast<size_t>(kColdLoad));
  EXPECT_EQ(row[kColdLoad].rfind("failed: ", 0), 0u) << row[kColdLoad];
}

TEST(ReportPeerErrors, SizesOtherThanAskedFailTheStage) {
  // The captured output is pp128 / tg32; this report asks for pp8 / tg4.
  TempDir dir;
  write_fake_program(dir / "llama-bench", dir / "args",
                     data_path("peers/llama_bench_smollm2_q4_1.json"));
  write_fake_program(dir / "python", dir / "python.args",
                     data_path("peers/peer_transformers_smollm2_q4_1.json"));
  auto result = report_with(dir, "--compare llama.cpp --compare transformers --llama-bench " +
                                     (dir / "llama-bench").string() + " --python " +
                                     (dir / "python").string());
  EXPECT_EQ(result.status, 1) << result.output;
  json r = json::parse(read_file(dir / "out" / "results.json"));
  EXPECT_NE(r["stages"]["peer llama.cpp tiny.gguf"].value("error", "").find("no pp8 test"),
            std::string::npos)
      << r["stages"].dump();
  EXPECT_NE(
      r["stages"]["peer transformers tiny.gguf"].value("error", "").find("key 'prompt_tokens'"),
      std::string::npos)
      << r["stages"].dump();
}

TEST(ReportPeerErrors, AGivenProgramThatIsMissingIsNamed) {
  TempDir dir;
  Environment environment;
  environment.set("FLOW2_PYTHON", "/no/such/python");
  auto result = report_with(dir, "--compare transformers");
  EXPECT_EQ(result.status, 1) << result.output;
  json r = json::parse(read_file(dir / "out" / "results.json"));
  EXPECT_NE(r["stages"]["peer transformers tiny.gguf"]
                .value("error", "")
                .find("$FLOW2_PYTHON /no/such/python"),
            std::string::npos)
      << r["stages"].dump();
}

}  // namespace
}  // namespace flow2
