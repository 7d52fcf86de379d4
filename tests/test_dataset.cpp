// Fine-tuning datasets on the tiny-llama tokenizer and ChatML template: format detection, tokens
// equal to the encoded template rendering, label masks that cover exactly the assistant's
// turns, EOS handling, truncation, the seeded train/valid split, statistics, the shipped
// examples and the `flow2 dataset` command.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cli_runner.h"
#include "dataset_support.h"
#include "flow2/dataset_stats.h"

namespace flow2 {
namespace {

using nlohmann::json;
using testing::jsonl;
using testing::TempDir;
using testing::TinyChatModel;
using testing::write_file;

std::filesystem::path examples_dir() {
  return std::filesystem::path(FLOW2_SOURCE_DIR) / "examples" / "data";
}

std::string masked_text(const Tokenizer& tokenizer, const Example& example) {
  std::vector<int32_t> ids;
  for (size_t t = 0; t < example.tokens.size(); ++t) {
    if (example.label_mask[t]) ids.push_back(example.tokens[t]);
  }
  return tokenizer.decode(ids);
}

TEST(Dataset, DetectsEachFormat) {
  TinyChatModel model;
  TempDir dir;
  struct Case {
    std::string file;
    json row;
    DatasetFormat format;
  };
  std::vector<Case> cases = {
      {"pr.jsonl", {{"prompt", "Hi"}, {"response", "Hello"}}, DatasetFormat::PromptResponse},
      {"pc.jsonl", {{"prompt", "Hi"}, {"completion", "Hello"}}, DatasetFormat::PromptCompletion},
      {"text.jsonl", {{"text", "Just some text."}}, DatasetFormat::Text},
      {"chat.jsonl",
       {{"messages",
         {{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Yo"}}}}},
       DatasetFormat::Messages},
  };
  for (const auto& c : cases) {
    write_file(dir / c.file, jsonl({c.row, c.row}));
    DatasetOptions options = model.options();
    options.val_split = 0;
    Dataset dataset = model.load(dir / c.file, options);
    EXPECT_EQ(dataset.train.format, c.format) << c.file;
    EXPECT_EQ(dataset.train.examples.size(), 2u) << c.file;
    EXPECT_TRUE(dataset.valid.empty());
  }
}

TEST(Dataset, PromptResponseTokensAreTheEncodedTemplateAndMaskTheResponse) {
  TinyChatModel model;
  DatasetOptions options = model.options();
  options.val_split = 0;
  Dataset dataset = model.load(examples_dir() / "quotes_train.jsonl", options);
  ASSERT_EQ(dataset.train.examples.size(), 20u);
  std::ifstream stream(examples_dir() / "quotes_train.jsonl");
  size_t i = 0;
  for (std::string line; std::getline(stream, line); ++i) {
    json row = json::parse(line);
    const Example& example = dataset.train.examples.at(i);
    std::string rendered =
        model.formatter.render({{"user", row["prompt"]}, {"assistant", row["response"]}}, false);
    // The ChatML turn ends with <|im_end|>: no EOS appended.
    EXPECT_EQ(example.tokens, model.tokenizer.encode(rendered));
    EXPECT_EQ(masked_text(model.tokenizer, example),
              row["response"].get<std::string>() + "<|im_end|>\n");
    EXPECT_EQ(example.line, static_cast<int64_t>(i + 1));
    EXPECT_FALSE(example.truncated);
  }
  EXPECT_EQ(dataset.boundary_merges, 0);
}

TEST(Dataset, MessagesMaskEveryAssistantTurnAndOnlyThose) {
  TinyChatModel model;
  TempDir dir;
  json row = {{"messages",
               {{{"role", "system"}, {"content", "Be brief."}},
                {{"role", "user"}, {"content", "What is 2+2?"}},
                {{"role", "assistant"}, {"content", "4."}},
                {{"role", "user"}, {"content", "And 3+3?"}},
                {{"role", "assistant"}, {"content", " 6, of course."}}}}};
  write_file(dir / "train.jsonl", jsonl({row}));
  Dataset dataset = model.load(dir / "train.jsonl");
  ASSERT_EQ(dataset.train.examples.size(), 1u);
  const Example& example = dataset.train.examples[0];
  std::vector<ChatMessage> messages;
  for (const auto& m : row["messages"]) messages.push_back({m["role"], m["content"]});
  EXPECT_EQ(example.tokens, model.tokenizer.encode(model.formatter.render(messages, false)));
  EXPECT_EQ(masked_text(model.tokenizer, example), "4.<|im_end|>\n 6, of course.<|im_end|>\n");
  // Two contiguous trained regions, each starting right after "<|im_start|>assistant\n".
  int regions = 0;
  for (size_t t = 0; t < example.tokens.size(); ++t) {
    if (example.label_mask[t] && (t == 0 || !example.label_mask[t - 1])) ++regions;
  }
  EXPECT_EQ(regions, 2);
}

// A template that lists the tools it is given sees the example's "tools" (trim_blocks eats
// the newline after the block tag, as in transformers).
TEST(Dataset, MessagesToolsReachTheTemplate) {
  TinyChatModel model;
  model.tokenizer_config.chat_template =
      "{% if tools %}TOOLS:{% for t in tools %}{{ t.name }};{% endfor %}\n{% endif %}"
      "{% for m in messages %}{{ m.role }}: {{ m.content }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}assistant: {% endif %}";
  ChatFormatter formatter(model.tokenizer_config, model.config, model.tokenizer);
  TempDir dir;
  json tools = json::array({{{"name", "get_weather"}}, {{"name", "add"}}});
  json row = {{"messages",
               {{{"role", "user"}, {"content", "Weather?"}},
                {{"role", "assistant"}, {"content", "Sunny."}}}},
              {"tools", tools}};
  write_file(dir / "train.jsonl", jsonl({row}));
  Dataset dataset = load_dataset(dir / "train.jsonl", model.tokenizer, formatter, model.options());
  ASSERT_EQ(dataset.train.examples.size(), 1u);
  const std::string text = model.tokenizer.decode(dataset.train.examples[0].tokens);
  EXPECT_NE(text.find("TOOLS:get_weather;add;"), std::string::npos) << text;
  EXPECT_EQ(formatter.render({{"user", "Weather?"}, {"assistant", "Sunny."}}, false, tools),
            "TOOLS:get_weather;add;user: Weather?<|im_end|>\nassistant: Sunny.<|im_end|>\n");
}

TEST(Dataset, Llama3TemplateMasksTheTrimmedReplyAndEotId) {
  auto directory = testing::data_path("tokenizers/llama3_1");
  Tokenizer tokenizer = Tokenizer::from_file(directory / "tokenizer.json");
  TokenizerConfig tokenizer_config = load_tokenizer_config(directory);
  ModelConfig config = load_model_config(testing::model_path("tiny-llama"));
  config.eos_token_ids.clear();  // tiny-llama's ids mean nothing in this vocabulary
  ChatFormatter formatter(tokenizer_config, config, tokenizer);
  DatasetOptions options;
  options.eos_ids = end_of_turn_ids(config, tokenizer_config, tokenizer);
  ASSERT_EQ(options.eos_ids, std::vector<int32_t>{128009});  // <|eot_id|>
  options.val_split = 0;
  TempDir dir;
  json row = {{"messages",
               {{{"role", "user"}, {"content", "Capital of France?"}},
                {{"role", "assistant"}, {"content", "Paris. "}},
                {{"role", "user"}, {"content", "And of Italy?"}},
                {{"role", "assistant"}, {"content", "Rome, since 1871."}}}}};
  write_file(dir / "chat.jsonl", jsonl({row}));
  Dataset dataset = load_dataset(dir / "chat.jsonl", tokenizer, formatter, options);
  const Example& example = dataset.train.examples.at(0);
  std::vector<ChatMessage> messages;
  for (const auto& m : row["messages"]) messages.push_back({m["role"], m["content"]});
  EXPECT_EQ(example.tokens, tokenizer.encode(formatter.render(messages, false)));
  EXPECT_EQ(example.tokens.front(), 128000);  // <|begin_of_text|> from the template
  EXPECT_EQ(masked_text(tokenizer, example), "Paris.<|eot_id|>Rome, since 1871.<|eot_id|>");
}

TEST(Dataset, MaskPromptOffTrainsEveryToken) {
  TinyChatModel model;
  DatasetOptions options = model.options();
  options.mask_prompt = false;
  options.val_split = 0;
  Dataset dataset = model.load(examples_dir() / "quotes_train.jsonl", options);
  for (const auto& example : dataset.train.examples) {
    EXPECT_EQ(std::count(example.label_mask.begin(), example.label_mask.end(), 1),
              static_cast<int64_t>(example.tokens.size()));
  }
}

TEST(Dataset, TextTrainsEveryTokenAndEndsWithEos) {
  TinyChatModel model;
  TempDir dir;
  write_file(dir / "t.jsonl", jsonl({{{"text", "Hello world."}}, {{"text", "Ends<|im_end|>"}}}));
  DatasetOptions options = model.options();
  options.val_split = 0;
  Dataset dataset = model.load(dir / "t.jsonl", options);
  ASSERT_EQ(dataset.train.examples.size(), 2u);
  std::vector<int32_t> expected = model.tokenizer.encode("Hello world.", true);
  expected.push_back(3);  // <|im_end|>
  EXPECT_EQ(dataset.train.examples[0].tokens, expected);
  EXPECT_EQ(dataset.train.examples[1].tokens, model.tokenizer.encode("Ends<|im_end|>", true));
  for (const auto& example : dataset.train.examples) {
    EXPECT_TRUE(std::all_of(example.label_mask.begin(), example.label_mask.end(),
                            [](uint8_t m) { return m == 1; }));
  }
}

TEST(Dataset, EosIsAppendedWhenTheTemplateDoesNotEndTheTurn) {
  TinyChatModel model;
  TokenizerConfig plain = model.tokenizer_config;
  plain.chat_template =
      "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
      "{% if add_generation_prompt %}assistant:{% endif %}";
  ChatFormatter formatter(plain, model.config, model.tokenizer);
  TempDir dir;
  write_file(dir / "t.jsonl", jsonl({{{"prompt", "Hi"}, {"response", "Hello there"}}}));
  DatasetOptions options = model.options();
  options.val_split = 0;
  Dataset dataset = load_dataset(dir / "t.jsonl", model.tokenizer, formatter, options);
  const Example& example = dataset.train.examples.at(0);
  std::vector<int32_t> expected = model.tokenizer.encode("user: Hi\nassistant: Hello there\n");
  expected.push_back(3);
  EXPECT_EQ(example.tokens, expected);
  EXPECT_EQ(masked_text(model.tokenizer, example), " Hello there\n<|im_end|>");
  EXPECT_EQ(example.label_mask.back(), 1);
}

TEST(Dataset, BoundaryInsideATokenTrainsTheStraddlingToken) {
  TinyChatModel model;
  TokenizerConfig glued = model.tokenizer_config;
  // No separator between the turns: the prompt's last letters and the reply's first ones may
  // merge into one token.
  glued.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}";
  ChatFormatter formatter(glued, model.config, model.tokenizer);
  TempDir dir;
  write_file(dir / "t.jsonl", jsonl({{{"prompt", "th"}, {"response", "e end"}}}));
  DatasetOptions options = model.options();
  options.val_split = 0;
  Dataset dataset = load_dataset(dir / "t.jsonl", model.tokenizer, formatter, options);
  const Example& example = dataset.train.examples.at(0);
  EXPECT_EQ(example.tokens.back(), 3);  // EOS appended: the template ends no turn
  std::vector<int32_t> prompt = model.tokenizer.encode("th");
  std::vector<int32_t> full = model.tokenizer.encode("the end");
  // "th" alone is t|h, but "the end" is t|he|...: the boundary falls inside "he".
  ASSERT_FALSE(std::equal(prompt.begin(), prompt.end(), full.begin()));
  EXPECT_EQ(dataset.boundary_merges, 1);
  // The straddling token is trained: the trained tokens cover the whole reply.
  EXPECT_EQ(masked_text(model.tokenizer, example), "he end<|im_end|>");
}

TEST(Dataset, TruncatesToMaxSeqLenAndCounts) {
  TinyChatModel model;
  DatasetOptions options = model.options();
  options.val_split = 0;
  Dataset full = model.load(examples_dir() / "quotes_train.jsonl", options);
  std::vector<int64_t> lengths;
  for (const auto& example : full.train.examples) lengths.push_back(example.original_length);
  std::sort(lengths.begin(), lengths.end());
  options.max_seq_len = lengths[lengths.size() / 2];
  size_t longer = std::count_if(lengths.begin(), lengths.end(),
                                [&](int64_t n) { return n > options.max_seq_len; });
  ASSERT_GT(longer, 0u);
  Dataset cut = model.load(examples_dir() / "quotes_train.jsonl", options);
  size_t truncated = 0;
  for (size_t i = 0; i < cut.train.examples.size(); ++i) {
    const Example& example = cut.train.examples[i];
    EXPECT_LE(static_cast<int64_t>(example.tokens.size()), options.max_seq_len);
    EXPECT_EQ(example.label_mask.size(), example.tokens.size());
    const Example& whole = full.train.examples[i];
    EXPECT_TRUE(std::equal(example.tokens.begin(), example.tokens.end(), whole.tokens.begin()));
    truncated += example.truncated;
  }
  EXPECT_EQ(truncated, longer);
  EXPECT_EQ(split_stats(cut.train).truncated, longer);
}

std::set<int64_t> lines_of(const DatasetSplit& split) {
  std::set<int64_t> lines;
  for (const auto& example : split.examples) lines.insert(example.line);
  return lines;
}

TEST(Dataset, SplitIsSeededDeterministicAndDisjoint) {
  TinyChatModel model;
  DatasetOptions options = model.options();
  options.val_split = 0.25;
  options.seed = 7;
  auto path = examples_dir() / "train.jsonl";
  Dataset a = model.load(path, options);
  Dataset b = model.load(path, options);
  EXPECT_EQ(a.train.examples.size(), 60u);
  EXPECT_EQ(a.valid.examples.size(), 20u);
  EXPECT_TRUE(a.valid.from_val_split);
  EXPECT_EQ(a.valid.format, DatasetFormat::Text);
  EXPECT_EQ(lines_of(a.train), lines_of(b.train));
  EXPECT_EQ(lines_of(a.valid), lines_of(b.valid));
  std::set<int64_t> all = lines_of(a.train);
  for (int64_t line : lines_of(a.valid)) EXPECT_TRUE(all.insert(line).second) << line;
  EXPECT_EQ(all.size(), 80u);
  options.seed = 8;
  Dataset c = model.load(path, options);
  EXPECT_NE(lines_of(a.valid), lines_of(c.valid));
  EXPECT_EQ(c.valid.examples.size(), 20u);
}

TEST(Dataset, SplitIndicesEdgeCases) {
  EXPECT_TRUE(split_indices(1, 0.5, 0).second.empty());
  EXPECT_EQ(split_indices(10, 0.01, 0).second.size(), 1u);  // at least one
  EXPECT_EQ(split_indices(10, 0.99, 0).first.size(), 1u);   // never all
  EXPECT_TRUE(split_indices(10, 0.0, 0).second.empty());
  EXPECT_THROW(split_indices(10, 1.0, 0), Error);
}

TEST(Dataset, ShippedExamplesLoad) {
  TinyChatModel model;
  Dataset dataset = model.load(examples_dir());
  EXPECT_EQ(dataset.train.format, DatasetFormat::Text);
  EXPECT_EQ(dataset.train.examples.size(), 80u);
  EXPECT_EQ(dataset.valid.format, DatasetFormat::Messages);
  EXPECT_EQ(dataset.valid.examples.size(), 15u);
  EXPECT_FALSE(dataset.valid.from_val_split);
  EXPECT_TRUE(dataset.test.empty());
  for (const auto& example : dataset.valid.examples) {
    EXPECT_GT(std::count(example.label_mask.begin(), example.label_mask.end(), 1), 0);
  }
  Dataset quotes = model.load(examples_dir() / "quotes_train.jsonl");
  EXPECT_EQ(quotes.train.format, DatasetFormat::PromptResponse);
  EXPECT_EQ(quotes.train.examples.size() + quotes.valid.examples.size(), 20u);
  EXPECT_EQ(quotes.valid.examples.size(), 2u);  // val_split 0.1
}

TEST(Dataset, DirectoryWithTestSplit) {
  TinyChatModel model;
  TempDir dir;
  write_file(dir / "train.jsonl", jsonl({{{"text", "a"}}, {{"text", "b"}}}));
  write_file(dir / "test.jsonl", jsonl({{{"prompt", "q"}, {"completion", "c"}}}));
  Dataset dataset = model.load(dir.path());
  EXPECT_EQ(dataset.test.examples.size(), 1u);
  EXPECT_EQ(dataset.test.format, DatasetFormat::PromptCompletion);
  EXPECT_EQ(dataset.valid.examples.size(), 1u);  // split off train
  EXPECT_EQ(dataset_stats(dataset).splits.size(), 3u);
}

TEST(DatasetStats, LengthSummaryInterpolatesLikeNumpy) {
  std::vector<int64_t> lengths;
  for (int64_t i = 20; i >= 1; --i) lengths.push_back(i);
  LengthSummary summary = summarize_lengths(lengths);
  EXPECT_EQ(summary.min, 1);
  EXPECT_EQ(summary.max, 20);
  EXPECT_DOUBLE_EQ(summary.mean, 10.5);
  EXPECT_DOUBLE_EQ(summary.median, 10.5);
  EXPECT_NEAR(summary.p95, 19.05, 1e-12);  // numpy.percentile(range(1, 21), 95)
  LengthSummary one = summarize_lengths({7});
  EXPECT_EQ(one.min, 7);
  EXPECT_DOUBLE_EQ(one.p95, 7);
}

TEST(DatasetStats, CountsTokensAndTrainedTokens) {
  TinyChatModel model;
  Dataset dataset = model.load(examples_dir());
  DatasetStats stats = dataset_stats(dataset);
  ASSERT_EQ(stats.splits.size(), 2u);
  const SplitStats& valid = stats.splits[1];
  EXPECT_EQ(valid.name, "valid");
  EXPECT_EQ(valid.format, "messages");
  EXPECT_EQ(valid.examples, 15u);
  int64_t tokens = 0, trained = 0;
  for (const auto& example : dataset.valid.examples) {
    tokens += static_cast<int64_t>(example.tokens.size());
    trained += std::count(example.label_mask.begin(), example.label_mask.end(), 1);
  }
  EXPECT_EQ(valid.tokens, tokens);
  EXPECT_EQ(valid.trained_tokens, trained);
  EXPECT_LT(trained, tokens);
  json out = stats_json(stats);
  EXPECT_EQ(out["splits"][0]["format"], "text");
  EXPECT_EQ(out["splits"][0]["examples"], 80);
}

TEST(DatasetCli, PrintsStatistics) {
  auto model = testing::model_path("tiny-llama").string();
  auto result = testing::run_cli("dataset --model " + model + " --data " + examples_dir().string() +
                                 " --max-seq-len 40 --json");
  ASSERT_EQ(result.status, 0) << result.output;
  json stats = json::parse(result.stdout_text);
  EXPECT_EQ(stats["max_seq_len"], 40);
  ASSERT_EQ(stats["splits"].size(), 2u);
  EXPECT_EQ(stats["splits"][0]["examples"], 80);
  EXPECT_GT(stats["splits"][0]["truncated"].get<int>(), 0);
  EXPECT_EQ(stats["splits"][1]["format"], "messages");

  result = testing::run_cli("dataset --model " + model + " --data " +
                            (examples_dir() / "quotes_train.jsonl").string() +
                            " --val-split 0.25 --seed 3");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("train: 15 examples, prompt/response"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("valid: 5 examples"), std::string::npos) << result.output;
}

TEST(DatasetCli, ReportsBadLinesAndSkipsThemOnRequest) {
  TempDir dir;
  write_file(dir / "train.jsonl",
             jsonl({{{"text", "good"}}, {{"text", 5}}, {{"text", "fine"}}}) + "{oops\n");
  auto model = testing::model_path("tiny-llama").string();
  auto result = testing::run_cli("dataset --model " + model + " --data " + dir.path().string());
  EXPECT_EQ(result.status, 1);
  std::string file = (dir / "train.jsonl").string();
  EXPECT_NE(result.output.find(file + ":2: field \"text\" must be a string"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find(file + ":4: invalid JSON"), std::string::npos) << result.output;

  result = testing::run_cli("dataset --model " + model + " --data " + dir.path().string() +
                            " --skip-invalid --json");
  ASSERT_EQ(result.status, 0) << result.output;
  json stats = json::parse(result.stdout_text);
  EXPECT_EQ(stats["splits"][0]["skipped"], 2);
  EXPECT_EQ(stats["splits"][0]["skipped_lines"][0]["line"], 2);
  EXPECT_EQ(stats["splits"][0]["skipped_lines"][1]["line"], 4);
}

}  // namespace
}  // namespace flow2
