// flow2 report on the tiny-llama fixture and a small dataset with invalid lines: results.json
// agrees with the numbers printed in report.md and report.html, invalid lines are listed, text
// is escaped, a report without measurements says so, and the HTML renders in headless Chromium
// (skipped when chromium is not installed).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "cli_runner.h"
#include "flow2/report.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;
using testing::model_path;
using testing::read_file;
using testing::run_cli;
using testing::TempDir;
using testing::write_file;

class ReportCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // The '<&>' in the directory name must come out escaped in the HTML.
    const auto data = dir_->path() / "data<&>";
    std::filesystem::create_directories(data);
    std::string train;
    for (int i = 0; i < 12; ++i) {
      train += "{\"prompt\": \"What is " + std::to_string(i) + " plus one?\", \"response\": \"" +
               std::to_string(i + 1) + ".\"}\n";
      if (i == 2) train += "{\"prompt\": \"no response\"}\n";
      if (i == 5) train += "not json at all\n";
    }
    write_file(data / "train.jsonl", train);
    write_file(data / "valid.jsonl",
               "{\"prompt\": \"What is 20 plus one?\", \"response\": \"21.\"}\n"
               "{\"prompt\": \"What is 30 plus one?\", \"response\": \"31.\"}\n");
    result_ = new testing::CliResult(
        run_cli("report --model " + model_path("tiny-llama").string() + " --data '" +
                data.string() + "' --out " + (dir_->path() / "out").string() +
                " --quick --prompt-tokens 8 --gen-tokens 4 --reps 2 --finetune-steps 3 "
                "--finetune-seq-len 32"));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete dir_;
  }
  static std::filesystem::path out(const std::string& name) { return dir_->path() / "out" / name; }
  static json results() { return json::parse(read_file(out("results.json"))); }

  static TempDir* dir_;
  static testing::CliResult* result_;
};
TempDir* ReportCli::dir_ = nullptr;
testing::CliResult* ReportCli::result_ = nullptr;

std::vector<std::string> split_cells(const std::string& row, const std::string& separator) {
  std::vector<std::string> cells;
  size_t start = 0, at;
  while ((at = row.find(separator, start)) != std::string::npos) {
    cells.push_back(row.substr(start, at - start));
    start = at + separator.size();
  }
  cells.push_back(row.substr(start));
  for (auto& cell : cells) {
    cell.erase(0, cell.find_first_not_of(' '));
    cell.erase(cell.find_last_not_of(' ') + 1);
  }
  return cells;
}

// The cells of the first table row that starts with `prefix`, up to the end of its line / row.
std::vector<std::string> row_after(const std::string& text, const std::string& prefix,
                                   const std::string& separator, const std::string& end) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return {};
  const size_t stop = text.find(end, at);
  return split_cells(text.substr(at, stop - at), separator);
}

// "12.3 ± 0.4" -> 12.3
double leading_number(const std::string& cell) {
  return std::stod(cell);
}

TEST_F(ReportCli, WritesAllFilesAndSucceeds) {
  ASSERT_EQ(result_->status, 0) << result_->output;
  for (const char* name : {"report.md", "report.html", "results.json"}) {
    EXPECT_TRUE(std::filesystem::exists(out(name))) << name;
  }
  // Progress on stderr for every stage.
  EXPECT_NE(result_->output.find("report: [1/"), std::string::npos) << result_->output;
  json r = results();
  for (const char* stage : {"system", "benchmark", "dataset", "finetune"}) {
    EXPECT_TRUE(r["stages"].contains(stage)) << stage;
  }
  EXPECT_TRUE(r["failed_stages"].empty());
}

TEST_F(ReportCli, PerformanceNumbersAgreeWithResultsJson) {
  json r = results();
  const json& cpu = r["benchmark"]["models"][0]["backends"][0];
  ASSERT_EQ(cpu["backend"], "cpu");
  const double tg = cpu["gen_tok_s"]["mean"], pp = cpu["prompt_tok_s"]["mean"];
  const double cold = cpu["cold_load_s"], peak = cpu["peak_rss_bytes"];
  const std::string md = read_file(out("report.md"));
  const std::string html = read_file(out("report.html"));
  // Columns: model, source, backend, size, params, quantization, cold, warm, peak, ttft, pp, tg.
  auto md_row = row_after(md, "| tiny-llama | flow2 | cpu |", "|", "\n");
  ASSERT_GE(md_row.size(), 13u) << md;
  auto html_row =
      row_after(html, "<tr><td>tiny-llama</td><td>flow2</td><td>cpu</td>", "</td><td>", "</tr>");
  ASSERT_GE(html_row.size(), 12u) << html;
  // md_row[0] is the empty cell before the first '|'; html_row[0] starts with "<tr><td>".
  for (const auto& [cells, offset] : {std::pair{md_row, 1}, std::pair{html_row, 0}}) {
    EXPECT_NEAR(leading_number(cells[offset + 6]), cold, 0.0005 + 1e-9);
    EXPECT_NEAR(leading_number(cells[offset + 8]), peak / 1e6, 0.05 + 1e-9);
    EXPECT_NEAR(leading_number(cells[offset + 10]), pp, 0.05 + 1e-9);
    EXPECT_NEAR(leading_number(cells[offset + 11]), tg, 0.05 + 1e-9);
  }
}

TEST_F(ReportCli, FineTuningNumbersAgree) {
  json r = results();
  const json& ft = r["finetune"];
  if (ft["status"] != "ok") GTEST_SKIP() << "fine-tuning: " << ft.dump();
  const std::string md = read_file(out("report.md"));
  const std::string html = read_file(out("report.html"));
  const std::string params = std::to_string(ft["summary"]["trainable_parameters"].get<int64_t>());
  EXPECT_NE(md.find("| Trainable parameters | " + params + " |"), std::string::npos);
  EXPECT_NE(html.find("<td>Trainable parameters</td><td>" + params + "</td>"), std::string::npos);
  ASSERT_EQ(ft["loss_curve"].size(), 3u);
  for (const auto& point : ft["loss_curve"]) {
    auto cells = row_after(md, "| " + std::to_string(point["step"].get<int>()) + " | ", "|", "\n");
    ASSERT_GE(cells.size(), 3u);
    EXPECT_NEAR(std::stod(cells[2]), point["loss"].get<double>(), 0.00005 + 1e-9);
  }
  EXPECT_NE(html.find("Training loss per step"), std::string::npos);
}

TEST_F(ReportCli, InvalidLinesAreListedAndTextEscaped) {
  json r = results();
  ASSERT_EQ(r["dataset"]["status"], "ok") << r["dataset"].dump();
  ASSERT_EQ(r["dataset"]["invalid_lines"].size(), 2u);
  const std::string md = read_file(out("report.md"));
  const std::string html = read_file(out("report.html"));
  for (const auto& issue : r["dataset"]["invalid_lines"]) {
    const std::string where =
        issue["file"].get<std::string>() + ":" + std::to_string(issue["line"].get<int>()) + ":";
    EXPECT_NE(md.find(where), std::string::npos) << where;
  }
  EXPECT_NE(md.find("train.jsonl:4:"), std::string::npos);
  EXPECT_NE(md.find("train.jsonl:8:"), std::string::npos);
  EXPECT_NE(html.find("data&lt;&amp;&gt;/train.jsonl:4:"), std::string::npos);
  EXPECT_EQ(html.find("data<&>"), std::string::npos);
  EXPECT_NE(md.find("2 invalid line(s) were skipped"), std::string::npos);
}

TEST_F(ReportCli, SaysNoGpuBackendWasMeasured) {
  json r = results();
  const std::string md = read_file(out("report.md"));
  bool cuda_measured = false;
  for (const auto& b : r["benchmark"]["models"][0]["backends"]) {
    cuda_measured |= b["backend"] == "cuda" && b["measured"] == true;
  }
  if (!cuda_measured) {
    EXPECT_NE(md.find("No GPU backend was measured"), std::string::npos);
  }
}

TEST_F(ReportCli, RendersInHeadlessChromium) {
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "chromium is not installed (scripts/install-deps installs it)";
  }
  const std::string url = "file://" + out("report.html").string();
  const auto shot = dir_->path() / "shot.png";
  auto quoted = [](const std::string& s) { return "'" + s + "'"; };
  const std::string flags = "--headless --no-sandbox --disable-gpu --user-data-dir=" +
                            quoted((dir_->path() / "chromium-profile").string()) +
                            " --enable-logging=stderr ";
  testing::CliResult dom;
  {
    std::string command = "chromium " + flags + "--dump-dom " + quoted(url) + " 2>" +
                          quoted((dir_->path() / "chromium.log").string());
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) dom.stdout_text.append(buffer, n);
    dom.status = pclose(pipe);
  }
  ASSERT_EQ(dom.status, 0);
  const std::string& text = dom.stdout_text;
  EXPECT_NE(text.find("<main id=\"report\">"), std::string::npos) << text.substr(0, 500);
  EXPECT_NE(text.find("</main>"), std::string::npos);
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("<rect"), std::string::npos);
  EXPECT_NE(text.find("<path"), std::string::npos);
  const std::string log = read_file(dir_->path() / "chromium.log");
  EXPECT_EQ(log.find("Uncaught"), std::string::npos) << log;
  EXPECT_EQ(log.find("CONSOLE"), std::string::npos) << log;
  const std::string screenshot = "chromium " + flags +
                                 "--hide-scrollbars --window-size=1200,2400 "
                                 "--screenshot=" +
                                 quoted(shot.string()) + " " + quoted(url) + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(screenshot.c_str()), 0);
  ASSERT_TRUE(std::filesystem::exists(shot));
  EXPECT_GT(std::filesystem::file_size(shot), 20000u);  // a blank page compresses far smaller
}

TEST(Report, MissingMeasurementsAreSaid) {
  TempDir dir;
  json results = {{"report", {{"models", {"m"}}}},
                  {"stages", {{"benchmark", {{"status", "failed"}, {"error", "boom"}}}}},
                  {"failed_stages", {"benchmark"}},
                  {"finetune", {{"status", "not measured"}, {"reason", "no trainer"}}}};
  write_report_files(nlohmann::ordered_json(results), dir.path());
  const std::string md = read_file(dir / "report.md");
  EXPECT_NE(md.find("No benchmark results: failed: boom."), std::string::npos) << md;
  EXPECT_NE(md.find("Fine-tuning: not measured: no trainer."), std::string::npos);
  EXPECT_NE(md.find("Nothing was measured"), std::string::npos);
  EXPECT_NE(md.find("No GPU backend was measured"), std::string::npos);
}

TEST(Report, BadModelFailsAfterWritingTheReport) {
  TempDir dir;
  auto result = run_cli("report --model /no/such/model --out " + (dir / "out").string() +
                        " --quick --prompt-tokens 4 --gen-tokens 2 --reps 1");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("benchmark"), std::string::npos) << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "report.md"));
  json r = json::parse(read_file(dir / "out" / "results.json"));
  EXPECT_EQ(r["stages"]["benchmark"]["status"], "failed");
}

}  // namespace
}  // namespace flow2
