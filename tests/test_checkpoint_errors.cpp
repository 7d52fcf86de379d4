// Broken checkpoints through the command line: each gives exit status 1 and an error that names
// the file and what is wrong, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;
using testing::TempDir;

class BrokenCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::copy_directory(testing::model_path("tiny-llama"), dir_ / "model");
  }
  std::filesystem::path model() const { return dir_ / "model"; }
  std::filesystem::path weights() const { return model() / "model.safetensors"; }
  json config() const { return json::parse(testing::read_file(model() / "config.json")); }
  void write_config(const json& value) const {
    testing::write_file(model() / "config.json", value.dump());
  }
  // Replaces the JSON header of model.safetensors, keeping its data bytes.
  void rewrite_header(const std::function<void(json&)>& edit) const {
    std::string bytes = testing::read_file(weights());
    uint64_t size = 0;
    std::memcpy(&size, bytes.data(), 8);
    json header = json::parse(bytes.substr(8, size));
    edit(header);
    std::string text = header.dump();
    uint64_t new_size = text.size();
    std::string prefix(8, '\0');
    std::memcpy(prefix.data(), &new_size, 8);
    testing::write_file(weights(), prefix + text + bytes.substr(8 + size));
  }
  // Runs every command that reads the model and checks status 1 and both message fragments.
  void expect_failure(const std::string& what, const std::string& where) const {
    std::vector<std::string> commands = {
        "generate --model " + model().string() + " --prompt-ids 1,2,3 --max-tokens 2",
        "perplexity --model " + model().string() + " --ids 1,2,3"};
    // info reads headers only, so shape checks against config.json happen when weights load.
    if (what.find("config.json implies") == std::string::npos) {
      commands.push_back("info " + model().string());
    }
    for (const std::string& command : commands) {
      auto result = testing::run_cli(command);
      EXPECT_EQ(result.status, 1) << command << "\n" << result.output;
      EXPECT_NE(result.output.find(what), std::string::npos)
          << command << ": expected '" << what << "' in\n"
          << result.output;
      EXPECT_NE(result.output.find(where), std::string::npos)
          << command << ": expected '" << where << "' in\n"
          << result.output;
      EXPECT_NE(result.output.find("flow2: error:"), std::string::npos) << result.output;
    }
  }
  TempDir dir_;
};

TEST_F(BrokenCheckpoint, TruncatedFile) {
  std::string bytes = testing::read_file(weights());
  testing::write_file(weights(), bytes.substr(0, bytes.size() - 1000));
  expect_failure("run past the end of the data", "model.safetensors");
}

TEST_F(BrokenCheckpoint, HeaderLengthPastTheEnd) {
  std::string bytes = testing::read_file(weights());
  uint64_t huge = bytes.size();
  std::memcpy(bytes.data(), &huge, 8);
  testing::write_file(weights(), bytes);
  expect_failure("runs past the end of the file", "model.safetensors");
}

TEST_F(BrokenCheckpoint, OverlappingOffsets) {
  rewrite_header([](json& header) {
    auto& offsets = header["model.norm.weight"]["data_offsets"];
    offsets = {offsets[0].get<uint64_t>() - 8, offsets[1].get<uint64_t>() - 8};
  });
  expect_failure("overlaps", "model.safetensors");
}

TEST_F(BrokenCheckpoint, OutOfRangeOffsets) {
  rewrite_header([](json& header) {
    auto& offsets = header["model.norm.weight"]["data_offsets"];
    offsets = {offsets[0].get<uint64_t>() + 4096, offsets[1].get<uint64_t>() + 4096};
  });
  expect_failure("run past the end of the data", "model.norm.weight");
}

TEST_F(BrokenCheckpoint, SizeDoesNotMatchShape) {
  rewrite_header([](json& header) { header["model.norm.weight"]["shape"] = {65}; });
  expect_failure("needs 260 bytes", "model.norm.weight");
}

TEST_F(BrokenCheckpoint, MissingTensor) {
  rewrite_header([](json& header) {
    // Drop lm_head and move the remaining data so that the buffer stays fully covered.
    uint64_t removed = header["lm_head.weight"]["data_offsets"][1].get<uint64_t>();
    header.erase("lm_head.weight");
    for (auto& [name, info] : header.items()) {
      if (name == "__metadata__") continue;
      auto& offsets = info["data_offsets"];
      offsets = {offsets[0].get<uint64_t>() - removed, offsets[1].get<uint64_t>() - removed};
    }
  });
  // The data still holds lm_head's bytes at the front: cut them off.
  std::string bytes = testing::read_file(weights());
  uint64_t size = 0;
  std::memcpy(&size, bytes.data(), 8);
  testing::write_file(weights(), bytes.substr(0, 8 + size) + bytes.substr(8 + size + 320 * 64 * 4));
  auto result = testing::run_cli("generate --model " + model().string() + " --prompt-ids 1,2");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("missing tensor 'lm_head.weight'"), std::string::npos)
      << result.output;
}

TEST_F(BrokenCheckpoint, ShapeDisagreesWithConfig) {
  json value = config();
  value["intermediate_size"] = 161;
  write_config(value);
  expect_failure("config.json implies [161, 64]", "model.layers.0.mlp.gate_proj.weight");
}

TEST_F(BrokenCheckpoint, UnknownArchitecture) {
  json value = config();
  value["model_type"] = "mamba";
  write_config(value);
  expect_failure("unknown architecture 'mamba'", "config.json");
}

TEST_F(BrokenCheckpoint, MalformedConfig) {
  testing::write_file(model() / "config.json", "{\"model_type\": \"llama\", ");
  expect_failure("malformed JSON", "config.json");
}

TEST(CliErrors, MissingModelAndBadArguments) {
  TempDir dir;
  auto result = testing::run_cli("info " + (dir / "nothing").string());
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("no such file or directory"), std::string::npos) << result.output;
  result = testing::run_cli("info " + dir.path().string());
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("no config.json"), std::string::npos) << result.output;
  auto model = testing::model_path("tiny-llama").string();
  result = testing::run_cli("generate --model " + model + " --prompt-ids 1,999");
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("token id 999"), std::string::npos) << result.output;
  result = testing::run_cli("perplexity --model " + model + " --ids 1,-2");
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("'-2' is not a token id"), std::string::npos) << result.output;
  result = testing::run_cli("perplexity --model " + model + " --ids 5");
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("at least 2 tokens"), std::string::npos) << result.output;
  result = testing::run_cli("frobnicate");
  EXPECT_EQ(result.status, 2) << result.output;
}

}  // namespace
}  // namespace flow2
