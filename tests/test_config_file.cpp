// Option files: the YAML subset and JSON give the same entries; unsupported YAML names its line.
#include <gtest/gtest.h>

#include "flow2/config_file.h"
#include "flow2/error.h"
#include "test_support.h"

namespace flow2 {
namespace {

TEST(ConfigFile, YamlScalarsListsAndComments) {
  auto entries = parse_yaml_config(
      "# a comment\n"
      "---\n"
      "model: tests/data/models/tiny-llama   # trailing comment\n"
      "learning_rate: 1e-4\n"
      "mask_prompt: yes\n"
      "name: \"a # not a comment\"\n"
      "quote: 'it''s'\n"
      "targets: [q_proj, \"v_proj\"]\n"
      "layers:\n"
      "  - 1\n"
      "  - '2'\n"
      "empty: []\n",
      "c.yaml");
  ASSERT_EQ(entries.size(), 8u);
  EXPECT_EQ(entries[0].key, "model");
  EXPECT_EQ(entries[0].values, std::vector<std::string>{"tests/data/models/tiny-llama"});
  EXPECT_EQ(entries[0].line, 3);
  EXPECT_EQ(entries[1].values[0], "1e-4");
  EXPECT_EQ(entries[2].values[0], "true");
  EXPECT_EQ(entries[3].values[0], "a # not a comment");
  EXPECT_EQ(entries[4].values[0], "it's");
  EXPECT_TRUE(entries[5].is_list);
  EXPECT_EQ(entries[5].values, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(entries[6].values, (std::vector<std::string>{"1", "2"}));
  EXPECT_TRUE(entries[7].is_list);
  EXPECT_TRUE(entries[7].values.empty());
}

TEST(ConfigFile, YamlErrorsNameTheLine) {
  auto message = [](const std::string& text) {
    try {
      parse_yaml_config(text, "c.yaml");
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("a: 1\nlora:\n  rank: 8\n").find("c.yaml:3"), std::string::npos);
  EXPECT_NE(message("a: &anchor 1\n").find("c.yaml:1"), std::string::npos);
  EXPECT_NE(message("- x\n").find("without a key"), std::string::npos);
  EXPECT_NE(message("a: 1\na: 2\n").find("set twice"), std::string::npos);
  EXPECT_NE(message("just text\n").find("key: value"), std::string::npos);
}

TEST(ConfigFile, JsonLikeYaml) {
  auto entries = parse_json_config(
      R"({"rank": 8, "rslora": true, "targets": ["q_proj", "k_proj"], "schedule": "cosine"})",
      "c.json");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].values[0], "8");
  EXPECT_EQ(entries[1].values[0], "true");
  EXPECT_EQ(entries[2].values, (std::vector<std::string>{"q_proj", "k_proj"}));
  EXPECT_EQ(entries[3].values[0], "cosine");
  EXPECT_THROW(parse_json_config("[1]", "c.json"), Error);
  EXPECT_THROW(parse_json_config(R"({"a": {"b": 1}})", "c.json"), Error);
}

TEST(ConfigFile, ByExtension) {
  testing::TempDir dir;
  testing::write_file(dir / "c.yml", "rank: 4\n");
  testing::write_file(dir / "c.json", R"({"rank": 4})");
  testing::write_file(dir / "c.toml", "rank = 4\n");
  EXPECT_EQ(read_config_file(dir / "c.yml")[0].values[0], "4");
  EXPECT_EQ(read_config_file(dir / "c.json")[0].values[0], "4");
  EXPECT_THROW(read_config_file(dir / "c.toml"), Error);
  EXPECT_THROW(read_config_file(dir / "missing.json"), Error);
}

}  // namespace
}  // namespace flow2
