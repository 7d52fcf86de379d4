// flow2 finetune on tiny-llama with examples/data: the loss goes down, the adapter is a PEFT
// directory that loads, the log and summary are complete, and --config supplies flags that
// the command line overrides.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "flow2/lora_peft.h"
#include "flow2/model_config.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::vector<json> log_rows(const std::filesystem::path& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) rows.push_back(json::parse(line));
  return rows;
}

std::string finetune_command(const std::filesystem::path& out, const std::string& extra) {
  return "finetune --model " + testing::model_path("tiny-llama").string() + " --data " +
         std::string(FLOW2_SOURCE_DIR) + "/examples/data --out " + out.string() +
         " --progress off --json " + extra;
}

TEST(CliFinetune, LossDecreasesAndTheAdapterLoads) {
  testing::TempDir dir;
  auto result = testing::run_cli(finetune_command(
      dir.path(),
      "--iters 12 --batch-size 4 --learning-rate 1e-2 --rank 4 --targets all-linear "
      "--eval-every 6 --seed 3"));
  ASSERT_EQ(result.status, 0) << result.output;
  json summary = json::parse(result.stdout_text);
  EXPECT_EQ(summary["steps"], 12);
  EXPECT_GT(summary["trainable_parameters"].get<int64_t>(), 0);
  EXPECT_TRUE(summary.contains("final_val_loss"));

  std::vector<double> losses;
  std::vector<int64_t> eval_steps;
  for (const auto& row : log_rows(dir / "train_log.jsonl")) {
    if (row.contains("val_loss")) {
      eval_steps.push_back(row["step"]);
    } else {
      losses.push_back(row["loss"]);
    }
  }
  ASSERT_EQ(losses.size(), 12u);
  double first = (losses[0] + losses[1] + losses[2]) / 3,
         last = (losses[9] + losses[10] + losses[11]) / 3;
  EXPECT_LT(last, first) << "first steps " << first << ", last steps " << last;
  EXPECT_EQ(eval_steps, (std::vector<int64_t>{6, 12}));

  ModelConfig config = load_model_config(testing::model_path("tiny-llama"));
  LoraAdapter adapter = read_peft_adapter(dir.path(), config);
  EXPECT_EQ(adapter.config.rank, 4);
  EXPECT_FALSE(adapter.modules.empty());
  bool trained = false;  // B starts at zero; training moves it
  for (const auto& module : adapter.modules) {
    for (float value : module.b) trained |= value != 0.0f;
  }
  EXPECT_TRUE(trained);
  EXPECT_TRUE(std::filesystem::exists(dir / "train_summary.json"));
}

TEST(CliFinetune, ConfigFileWithCommandLineOverrides) {
  testing::TempDir dir;
  testing::write_file(dir / "finetune.yaml",
                      "iters: 5   # overridden below\n"
                      "batch_size: 2\n"
                      "rank: 2\n"
                      "targets: [q_proj, v_proj]\n"
                      "mask_prompt: false\n"
                      "schedule: cosine\n");
  auto result = testing::run_cli(
      finetune_command(dir / "out", "--config " + (dir / "finetune.yaml").string() + " --iters 2"));
  ASSERT_EQ(result.status, 0) << result.output;
  json summary = json::parse(result.stdout_text);
  EXPECT_EQ(summary["steps"], 2);
  EXPECT_EQ(summary["lora"]["rank"], 2);
  EXPECT_EQ(summary["lora"]["targets"], json({"q_proj", "v_proj"}));

  testing::write_file(dir / "bad.yaml", "iters: 2\nrnak: 4\n");
  result =
      testing::run_cli(finetune_command(dir / "out2", "--config " + (dir / "bad.yaml").string()));
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("bad.yaml:2: unknown option 'rnak'"), std::string::npos)
      << result.output;
}

TEST(CliFinetune, ResumeContinuesTheRun) {
  testing::TempDir whole, split;
  std::string flags =
      "--iters 4 --batch-size 2 --learning-rate 1e-2 --rank 2 --save-every 2 "
      "--dropout 0.1 --seed 5";
  auto result = testing::run_cli(finetune_command(whole.path(), flags));
  ASSERT_EQ(result.status, 0) << result.output;
  // A run cut off after its checkpoint at step 2: the same flags with --iters 4 resume it.
  result = testing::run_cli(finetune_command(split.path(), flags));
  ASSERT_EQ(result.status, 0) << result.output;
  result = testing::run_cli(finetune_command(split.path(), flags + " --resume"));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(json::parse(result.stdout_text)["resumed_from_step"], 4);
  result = testing::run_cli(finetune_command(split.path(),
                                             "--iters 4 --batch-size 2 "
                                             "--learning-rate 1e-2 --rank 4 "
                                             "--save-every 2 --seed 5 --resume"));
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("cannot resume"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace flow2
