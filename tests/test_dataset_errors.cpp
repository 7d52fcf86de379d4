// Bad fine-tuning data: every kind of bad line fails the load with file, line and problem, all
// bad lines of all files are listed (up to a cap), and skip_invalid loads the rest and says
// which lines it dropped.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dataset_support.h"

namespace flow2 {
namespace {

using nlohmann::json;
using testing::jsonl;
using testing::TempDir;
using testing::TinyChatModel;
using testing::write_file;

// The message of the Error that loading `path` throws ("" when it loads).
std::string load_error(const TinyChatModel& model, const std::filesystem::path& path,
                       DatasetOptions options) {
  try {
    model.load(path, options);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

std::string load_error(const TinyChatModel& model, const std::filesystem::path& path) {
  return load_error(model, path, model.options());
}

const json kGood = {{"prompt", "Hi"}, {"response", "Hello"}};

struct BadLine {
  std::string name;
  std::string line;
  std::string problem;
};

class DatasetBadLine : public ::testing::TestWithParam<BadLine> {};

TEST_P(DatasetBadLine, NamesFileLineAndProblem) {
  TinyChatModel model;
  TempDir dir;
  auto path = dir / "train.jsonl";
  write_file(path, jsonl({kGood, kGood}) + GetParam().line + "\n" + jsonl({kGood}));
  std::string message = load_error(model, path);
  EXPECT_NE(message.find(path.string() + ":3: " + GetParam().problem), std::string::npos)
      << message;
  EXPECT_NE(message.find("1 invalid line"), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DatasetBadLine,
    ::testing::Values(
        BadLine{"InvalidJson", R"({"prompt": "Hi", "response": )", "invalid JSON"},
        BadLine{"NotAnObject", R"(["prompt", "response"])", "expected a JSON object, got array"},
        BadLine{"MissingField", R"({"prompt": "Hi"})",
                "missing field \"response\" (the file is prompt/response)"},
        BadLine{"WrongType", R"({"prompt": "Hi", "response": 42})",
                "field \"response\" must be a string, got number"},
        BadLine{"FormatChange", R"({"text": "plain"})",
                "format changes mid-file: this line is text but the file is prompt/response "
                "(from line 1)"},
        BadLine{"UnknownKeys", R"({"question": "Hi"})", "missing field \"prompt\", \"response\""}),
    [](const auto& info) { return info.param.name; });

class DatasetBadMessages : public ::testing::TestWithParam<BadLine> {};

TEST_P(DatasetBadMessages, NamesFileLineAndProblem) {
  TinyChatModel model;
  TempDir dir;
  auto path = dir / "train.jsonl";
  json good = {
      {"messages",
       {{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Yo"}}}}};
  write_file(path, jsonl({good}) + GetParam().line + "\n");
  std::string message = load_error(model, path);
  EXPECT_NE(message.find(path.string() + ":2: " + GetParam().problem), std::string::npos)
      << message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DatasetBadMessages,
    ::testing::Values(
        BadLine{"NotAList", R"({"messages": "hi"})", "\"messages\" must be an array, got string"},
        BadLine{"Empty", R"({"messages": []})", "\"messages\" is empty"},
        BadLine{"MissingRole", R"({"messages": [{"content": "x"}]})",
                "messages[0]: missing field \"role\""},
        BadLine{
            "ContentNotString",
            R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": 1}]})",
            "messages[1]: field \"content\" must be a string, got number"},
        BadLine{"UnknownRole", R"({"messages": [{"role": "robot", "content": "x"}]})",
                "messages[0]: unknown role \"robot\""},
        BadLine{"NoAssistant", R"({"messages": [{"role": "user", "content": "x"}]})",
                "\"messages\" has no assistant message"},
        BadLine{"ToolsNotAList",
                R"({"messages": [{"role": "assistant", "content": "x"}], "tools": {}})",
                "\"tools\" must be an array, got object"}),
    [](const auto& info) { return info.param.name; });

TEST(DatasetErrors, EmptyFileFailsEvenWithSkipInvalid) {
  TinyChatModel model;
  TempDir dir;
  write_file(dir / "train.jsonl", jsonl({kGood}));
  write_file(dir / "valid.jsonl", "\n  \n");
  DatasetOptions options = model.options();
  options.skip_invalid = true;
  std::string message = load_error(model, dir.path(), options);
  EXPECT_NE(message.find((dir / "valid.jsonl").string() + ": empty file"), std::string::npos)
      << message;
}

TEST(DatasetErrors, ListsEveryBadLineOfEveryFile) {
  TinyChatModel model;
  TempDir dir;
  write_file(dir / "train.jsonl", jsonl({kGood}) + "{bad\n" +
                                      jsonl({kGood, {{"prompt", 1}, {"response", "x"}}}) +
                                      jsonl({{{"prompt", "only"}}}));
  write_file(dir / "valid.jsonl", jsonl({kGood, {{"text", "x"}}}));
  std::string message = load_error(model, dir.path());
  EXPECT_NE(message.find("dataset has 4 invalid lines"), std::string::npos) << message;
  std::string train = (dir / "train.jsonl").string(), valid = (dir / "valid.jsonl").string();
  for (const std::string& where :
       {train + ":2: ", train + ":4: ", train + ":5: ", valid + ":2: "}) {
    EXPECT_NE(message.find(where), std::string::npos) << where << "\n" << message;
  }
  EXPECT_EQ(message.find(train + ":1: "), std::string::npos) << message;
  EXPECT_EQ(message.find(train + ":3: "), std::string::npos) << message;
}

TEST(DatasetErrors, CapsTheListAndCountsTheRest) {
  TinyChatModel model;
  TempDir dir;
  std::string text = jsonl({kGood});
  for (int i = 0; i < 30; ++i) text += "not json\n";
  write_file(dir / "train.jsonl", text);
  std::string message = load_error(model, dir / "train.jsonl");
  EXPECT_NE(message.find("dataset has 30 invalid lines"), std::string::npos) << message;
  EXPECT_NE(message.find(":21: "), std::string::npos) << message;  // the 20th bad line
  EXPECT_EQ(message.find(":22: "), std::string::npos) << message;
  EXPECT_NE(message.find("... and 10 more"), std::string::npos) << message;
}

TEST(DatasetErrors, SkipInvalidLoadsTheGoodLinesAndReportsTheBad) {
  TinyChatModel model;
  TempDir dir;
  write_file(dir / "train.jsonl",
             jsonl({kGood, kGood}) + "{bad\n" + jsonl({kGood, {{"prompt", "x"}}, kGood}));
  DatasetOptions options = model.options();
  options.skip_invalid = true;
  options.val_split = 0;
  Dataset dataset = model.load(dir / "train.jsonl", options);
  EXPECT_EQ(dataset.train.examples.size(), 4u);
  ASSERT_EQ(dataset.train.skipped.size(), 2u);
  EXPECT_EQ(dataset.train.skipped[0].line, 3);
  EXPECT_EQ(dataset.train.skipped[1].line, 5);
  EXPECT_NE(dataset.train.skipped[1].message.find("missing field"), std::string::npos);
  std::vector<int64_t> lines;
  for (const auto& example : dataset.train.examples) lines.push_back(example.line);
  EXPECT_EQ(lines, (std::vector<int64_t>{1, 2, 4, 6}));
}

TEST(DatasetErrors, SkipInvalidWithNothingLeftFails) {
  TinyChatModel model;
  TempDir dir;
  write_file(dir / "train.jsonl", "nope\n{}\n");
  DatasetOptions options = model.options();
  options.skip_invalid = true;
  std::string message = load_error(model, dir / "train.jsonl", options);
  EXPECT_NE(message.find("no valid examples (2 invalid lines skipped)"), std::string::npos)
      << message;
}

TEST(DatasetErrors, TemplateFailuresAreLineErrors) {
  TinyChatModel model;
  TokenizerConfig strict = model.tokenizer_config;
  strict.chat_template =
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system "
      "messages') }}{% endif %}{{ m.content }}<|im_end|>{% endfor %}";
  ChatFormatter formatter(strict, model.config, model.tokenizer);
  TempDir dir;
  json system = {
      {"messages",
       {{{"role", "system"}, {"content", "s"}}, {{"role", "assistant"}, {"content", "a"}}}}};
  json fine = {{"messages", {{{"role", "assistant"}, {"content", "a"}}}}};
  write_file(dir / "train.jsonl", jsonl({fine, system}));
  try {
    load_dataset(dir / "train.jsonl", model.tokenizer, formatter, model.options());
    FAIL() << "loaded";
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_NE(message.find((dir / "train.jsonl").string() + ":2: "), std::string::npos) << message;
    EXPECT_NE(message.find("no system messages"), std::string::npos) << message;
  }
}

TEST(DatasetErrors, PathsAndOptions) {
  TinyChatModel model;
  TempDir dir;
  EXPECT_NE(load_error(model, dir / "missing.jsonl").find("no such file"), std::string::npos);
  EXPECT_NE(load_error(model, dir.path()).find("needs train.jsonl"), std::string::npos);
  write_file(dir / "train.jsonl", jsonl({kGood}));
  DatasetOptions options = model.options();
  options.max_seq_len = 0;
  EXPECT_NE(load_error(model, dir.path(), options).find("max_seq_len"), std::string::npos);
  options = model.options();
  options.val_split = 1.5;
  EXPECT_NE(load_error(model, dir.path(), options).find("val_split"), std::string::npos);
}

}  // namespace
}  // namespace flow2
