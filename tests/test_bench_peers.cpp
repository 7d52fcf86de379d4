// flow2 bench --compare with stand-in peers (tests/fake_peers.h): the captured llama-bench and
// transformers outputs must reach bench's --json "peers" and its text table, labelled by
// framework and version; a peer that is not installed is "not measured" and bench exits 0; one
// that prints something else is "failed" with the error, and bench exits 1 after its output.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "fake_peers.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;
using namespace flow2::testing;  // NOLINT: the fake peers and the CLI runner

class BenchPeers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_fake_peers(*dir_);
    Environment environment;
    environment.set("PATH", (*dir_ / "bin").string() + ":" + std::getenv("PATH"));
    environment.set("LLAMA_BENCH", std::nullopt);
    environment.set("FLOW2_PYTHON", (*dir_ / "bin" / "fake-python").string());
    // pp128 / tg32 / 2 repetitions: the sizes the captured outputs were measured with.
    const std::string command = "bench --model " + tiny_gguf(*dir_).string() +
                                " --device cpu --prompt-tokens 128 --gen-tokens 32 --reps 2 "
                                "--compare llama.cpp --compare transformers";
    json_ = new CliResult(run_cli(command + " --json"));
    table_ = new CliResult(run_cli(command));
  }
  static void TearDownTestSuite() {
    delete json_;
    delete table_;
    delete dir_;
  }
  static std::filesystem::path model() { return tiny_gguf(*dir_); }
  static json peer(const std::string& name) {
    const json out = json::parse(json_->stdout_text);
    for (const auto& entry : out["peers"]) {
      if (entry["peer"] == name) return entry;
    }
    return json();
  }
  // The table's line that holds `label`, or "".
  static std::string table_line(const std::string& label) {
    for (const auto& line : lines_of(table_->stdout_text)) {
      if (line.find(label) != std::string::npos) return line;
    }
    return "";
  }
  static json captured_transformers() {
    return json::parse(read_file(data_path("peers/peer_transformers_smollm2_q4_1.json")));
  }

  static TempDir* dir_;
  static CliResult* json_;
  static CliResult* table_;
};
TempDir* BenchPeers::dir_ = nullptr;
CliResult* BenchPeers::json_ = nullptr;
CliResult* BenchPeers::table_ = nullptr;

TEST_F(BenchPeers, JsonHasFlow2AndBothPeers) {
  ASSERT_EQ(json_->status, 0) << json_->output;
  const json out = json::parse(json_->stdout_text);
  EXPECT_EQ(out["models"][0]["backends"][0]["backend"], "cpu");
  ASSERT_EQ(out["peers"].size(), 2u) << out["peers"].dump();
  for (const auto& entry : out["peers"]) {
    EXPECT_EQ(entry["status"], "ok") << entry.dump();
    EXPECT_EQ(entry["model"], "tiny.gguf");
  }
}

TEST_F(BenchPeers, PeersAreCalledWithBenchsSizes) {
  const std::pair<const char*, std::vector<std::pair<std::string, std::string>>> calls[] = {
      {"llama-bench.args", {{"-m", model().string()}, {"-p", "128"}, {"-n", "32"}, {"-r", "2"}}},
      {"python.args", {{"--prompt-tokens", "128"}, {"--gen-tokens", "32"}, {"--reps", "2"}}}};
  for (const auto& [file, expected] : calls) {
    const auto args = lines_of(read_file(*dir_ / file));
    for (const auto& [flag, value] : expected) EXPECT_EQ(argument(args, flag), value) << file;
  }
}

TEST_F(BenchPeers, LlamaBenchNumbersAreInTheJsonAndTheTable) {
  const json tests = json::parse(read_file(data_path("peers/llama_bench_smollm2_q4_1.json")));
  const json pp = llama_test(tests, 128, 0), tg = llama_test(tests, 0, 32);
  const std::string framework = "llama.cpp llama-bench " + pp["build_commit"].get<std::string>();
  const json entry = peer("llama.cpp");
  EXPECT_EQ(entry["framework"], framework);
  EXPECT_EQ(entry["device"], "cpu");
  EXPECT_DOUBLE_EQ(entry["prompt_tok_s"]["mean"], pp["avg_ts"].get<double>());
  EXPECT_EQ(entry["prompt_tok_s"]["values"], pp["samples_ts"]);
  EXPECT_DOUBLE_EQ(entry["gen_tok_s"]["mean"], tg["avg_ts"].get<double>());

  ASSERT_EQ(table_->status, 0) << table_->output;
  const std::string line = table_line(framework + " (cpu)");
  ASSERT_FALSE(line.empty()) << table_->stdout_text;
  EXPECT_EQ(line.rfind("tiny.gguf ", 0), 0u) << line;
  EXPECT_NE(line.find(mean_sd(pp["avg_ts"], pp["stddev_ts"], 1)), std::string::npos) << line;
  EXPECT_NE(line.find(mean_sd(tg["avg_ts"], tg["stddev_ts"], 1)), std::string::npos) << line;
  EXPECT_NE(line.find("n/a"), std::string::npos) << "llama-bench measures no load: " << line;
}

TEST_F(BenchPeers, TransformersNumbersAreInTheJsonAndTheTable) {
  const json captured = captured_transformers();
  const json entry = peer("transformers");
  EXPECT_EQ(entry["framework"], captured["framework"]);
  for (const char* key :
       {"prompt_tok_s", "gen_tok_s", "ttft_s", "warm_load_s", "cold_load_s", "peak_rss_bytes"}) {
    EXPECT_EQ(entry[key], captured[key]) << key;
  }
  const std::string line = table_line(captured["framework"].get<std::string>() + " (cpu)");
  ASSERT_FALSE(line.empty()) << table_->stdout_text;
  EXPECT_NE(line.find(captured["dtype"].get<std::string>()), std::string::npos) << line;
  for (const auto& [key, digits] :
       {std::pair{"prompt_tok_s", 1}, {"gen_tok_s", 1}, {"ttft_s", 3}, {"warm_load_s", 3}}) {
    EXPECT_NE(line.find(mean_sd(captured[key]["mean"], captured[key]["sd"], digits)),
              std::string::npos)
        << key << ": " << line;
  }
  char peak[32];
  std::snprintf(peak, sizeof peak, " %.1f ", captured["peak_rss_bytes"].get<double>() / 1e6);
  EXPECT_NE(line.find(peak), std::string::npos) << line;
  // flow2's own row is still there.
  EXPECT_NE(table_->stdout_text.find("\ntiny.gguf                    cpu "), std::string::npos)
      << table_->stdout_text;
}

// bench on the tiny model with small sizes and `flags`.
CliResult bench_with(const TempDir& dir, const std::string& flags) {
  return run_cli("bench --model " + tiny_gguf(dir).string() +
                 " --device cpu --prompt-tokens 8 --gen-tokens 4 --reps 1 " + flags);
}

TEST(BenchPeerErrors, MissingPeersAreNotMeasuredAndBenchSucceeds) {
  TempDir dir;
  Environment environment;
  hide_peers(environment, dir);
  auto result = bench_with(dir, "--compare llama.cpp --compare transformers --json");
  ASSERT_EQ(result.status, 0) << result.output;
  const json out = json::parse(result.stdout_text);
  ASSERT_EQ(out["peers"].size(), 2u);
  for (const auto& entry : out["peers"]) {
    EXPECT_EQ(entry["status"], "not measured") << entry.dump();
    EXPECT_NE(entry["reason"].get<std::string>().find("not installed"), std::string::npos);
  }
  EXPECT_TRUE(out["models"][0]["backends"][0]["measured"].get<bool>());
  auto table = bench_with(dir, "--compare llama.cpp");
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.stdout_text.find("not measured: llama-bench is not installed"), std::string::npos)
      << table.stdout_text;
}

TEST(BenchPeerErrors, UnexpectedPeerOutputIsFailedAfterTheOutput) {
  TempDir dir;
  write_file(dir / "bad.json", R"([{"n_prompt": 8, "n_gen": 0, "stddev_ts": 1.0}])");
  write_fake_program(dir / "llama-bench", dir / "args", dir / "bad.json");
  auto result =
      bench_with(dir, "--compare llama.cpp --json --llama-bench " + (dir / "llama-bench").string());
  EXPECT_EQ(result.status, 1) << result.output;
  const json out = json::parse(result.stdout_text);
  EXPECT_EQ(out["peers"][0]["status"], "failed");
  EXPECT_NE(out["peers"][0]["error"].get<std::string>().find("'avg_ts'"), std::string::npos);
  EXPECT_NE(result.output.find("peer(s) failed: llama.cpp tiny.gguf"), std::string::npos);
}

TEST(BenchPeerErrors, WithoutCompareThereAreNoPeers) {
  TempDir dir;
  auto result = bench_with(dir, "--json");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_FALSE(json::parse(result.stdout_text).contains("peers"));
}

}  // namespace
}  // namespace flow2
