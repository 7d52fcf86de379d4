// load_dataset: files → validated records → rendered, truncated examples → train/valid/test,
// with every bad line of every file reported together.
#include "flow2/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "flow2/error.h"
#include "train/dataset_format.h"
#include "train/example_renderer.h"
#include "train/jsonl_reader.h"

namespace flow2 {
namespace {

constexpr size_t kListedErrors = 20;

struct FileResult {
  DatasetSplit split;
  std::vector<DataIssue> errors;
  bool fatal = false;  // a problem with the whole file: skip_invalid does not help
};

bool is_chat(DatasetFormat format) {
  return format != DatasetFormat::Text;
}

FileResult load_file(const std::string& name, const std::filesystem::path& path,
                     const Tokenizer& tokenizer, const ChatFormatter& formatter,
                     const DatasetOptions& options, int64_t& boundary_merges) {
  FileResult result;
  result.split.name = name;
  result.split.source = path;
  ParsedFile parsed = parse_dataset_lines(read_jsonl(path));
  if (parsed.format) result.split.format = *parsed.format;
  bool mask_prompt = options.mask_prompt.value_or(true) && parsed.format && is_chat(*parsed.format);
  ExampleRenderer renderer(tokenizer, formatter, mask_prompt, options.eos_ids);
  std::vector<LineError> errors = std::move(parsed.errors);
  for (const Record& record : parsed.records) {
    RenderedExample rendered;
    try {
      rendered = renderer.render(record);
    } catch (const Error& error) {
      errors.push_back({record.line, error.what()});
      continue;
    }
    boundary_merges += rendered.boundary_merges;
    Example example;
    example.line = record.line;
    example.original_length = static_cast<int64_t>(rendered.tokens.size());
    example.tokens = std::move(rendered.tokens);
    example.label_mask = std::move(rendered.label_mask);
    if (static_cast<int64_t>(example.tokens.size()) > options.max_seq_len) {
      example.tokens.resize(static_cast<size_t>(options.max_seq_len));
      example.label_mask.resize(static_cast<size_t>(options.max_seq_len));
      example.truncated = true;
    }
    result.split.examples.push_back(std::move(example));
  }
  std::stable_sort(errors.begin(), errors.end(),
                   [](const LineError& a, const LineError& b) { return a.line < b.line; });
  for (const auto& error : errors) {
    result.fatal = result.fatal || error.line == 0;
    result.errors.push_back({path, error.line, error.message});
  }
  std::stable_sort(result.split.examples.begin(), result.split.examples.end(),
                   [](const Example& a, const Example& b) { return a.line < b.line; });
  return result;
}

std::string issue_text(const DataIssue& issue) {
  if (issue.line == 0) return fmt::format("{}: {}", issue.file.string(), issue.message);
  return fmt::format("{}:{}: {}", issue.file.string(), issue.line, issue.message);
}

[[noreturn]] void fail_with(const std::vector<DataIssue>& issues, bool suggest_skip) {
  size_t lines = 0;
  for (const auto& issue : issues) lines += issue.line != 0;
  std::string message =
      lines == issues.size()
          ? fmt::format("dataset has {} invalid line{}", lines, lines == 1 ? "" : "s")
          : fmt::format("dataset has {} problem{}", issues.size(), issues.size() == 1 ? "" : "s");
  if (suggest_skip) message += " (skip_invalid / --skip-invalid loads the valid lines)";
  message += ":";
  for (size_t i = 0; i < issues.size() && i < kListedErrors; ++i) {
    message += "\n  " + issue_text(issues[i]);
  }
  if (issues.size() > kListedErrors) {
    message += fmt::format("\n  ... and {} more", issues.size() - kListedErrors);
  }
  throw Error(message);
}

}  // namespace

std::vector<int32_t> end_of_turn_ids(const ModelConfig& config,
                                     const TokenizerConfig& tokenizer_config,
                                     const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  auto add = [&](int64_t id) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) {
      ids.push_back(static_cast<int32_t>(id));
    }
  };
  if (!tokenizer_config.eos_token.empty()) {
    if (auto id = tokenizer.token_to_id(tokenizer_config.eos_token)) add(*id);
  }
  for (int64_t id : config.eos_token_ids) add(id);
  return ids;
}

DatasetFiles dataset_files(const std::filesystem::path& path) {
  check(std::filesystem::exists(path), "{}: no such file or directory", path.string());
  DatasetFiles files;
  if (!std::filesystem::is_directory(path)) {
    files.train = path;
    return files;
  }
  files.train = path / "train.jsonl";
  check(std::filesystem::exists(files.train),
        "{}: a dataset directory needs train.jsonl (and may have valid.jsonl, test.jsonl)",
        path.string());
  if (std::filesystem::exists(path / "valid.jsonl")) files.valid = path / "valid.jsonl";
  if (std::filesystem::exists(path / "test.jsonl")) files.test = path / "test.jsonl";
  return files;
}

std::pair<std::vector<size_t>, std::vector<size_t>> split_indices(size_t count,
                                                                  double valid_fraction,
                                                                  uint64_t seed) {
  check(valid_fraction >= 0.0 && valid_fraction < 1.0,
        "val_split must be at least 0 and below 1, got {}", valid_fraction);
  size_t valid_count = static_cast<size_t>(std::llround(valid_fraction * count));
  if (valid_fraction > 0.0 && count >= 2)
    valid_count = std::clamp<size_t>(valid_count, 1, count - 1);
  if (count < 2) valid_count = 0;
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  // Fisher-Yates with mt19937_64, whose output the standard fixes: the same split everywhere.
  std::mt19937_64 rng(seed);
  for (size_t i = count; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  std::vector<size_t> valid(order.begin(), order.begin() + static_cast<ptrdiff_t>(valid_count));
  std::vector<size_t> train(order.begin() + static_cast<ptrdiff_t>(valid_count), order.end());
  std::sort(valid.begin(), valid.end());
  std::sort(train.begin(), train.end());
  return {train, valid};
}

Dataset load_dataset(const std::filesystem::path& path, const Tokenizer& tokenizer,
                     const ChatFormatter& formatter, const DatasetOptions& options) {
  check(options.max_seq_len > 0, "max_seq_len must be positive, got {}", options.max_seq_len);
  check(options.val_split >= 0.0 && options.val_split < 1.0,
        "val_split must be at least 0 and below 1, got {}", options.val_split);
  DatasetFiles files = dataset_files(path);
  Dataset dataset;
  dataset.max_seq_len = options.max_seq_len;
  std::vector<FileResult> results;
  results.push_back(
      load_file("train", files.train, tokenizer, formatter, options, dataset.boundary_merges));
  if (files.valid) {
    results.push_back(
        load_file("valid", *files.valid, tokenizer, formatter, options, dataset.boundary_merges));
  }
  if (files.test) {
    results.push_back(
        load_file("test", *files.test, tokenizer, formatter, options, dataset.boundary_merges));
  }

  std::vector<DataIssue> issues;
  bool fatal = false;
  for (auto& result : results) {
    issues.insert(issues.end(), result.errors.begin(), result.errors.end());
    fatal = fatal || result.fatal;
  }
  if (!issues.empty() && (fatal || !options.skip_invalid)) fail_with(issues, !fatal);
  for (auto& result : results) result.split.skipped = std::move(result.errors);
  for (auto& result : results) {
    check(!result.split.examples.empty(), "{}: no valid examples ({} invalid lines skipped)",
          result.split.source.string(), result.split.skipped.size());
  }

  dataset.train = std::move(results[0].split);
  size_t next = 1;
  if (files.valid) dataset.valid = std::move(results[next++].split);
  if (files.test) dataset.test = std::move(results[next++].split);
  if (!files.valid) {
    dataset.valid.name = "valid";
    dataset.valid.source = dataset.train.source;
    dataset.valid.format = dataset.train.format;
    dataset.valid.from_val_split = true;
    auto [train, valid] =
        split_indices(dataset.train.examples.size(), options.val_split, options.seed);
    std::vector<Example> all = std::move(dataset.train.examples);
    dataset.train.examples.clear();
    for (size_t i : train) dataset.train.examples.push_back(std::move(all[i]));
    for (size_t i : valid) dataset.valid.examples.push_back(std::move(all[i]));
  }
  if (!files.test) {
    dataset.test.name = "test";
  }
  return dataset;
}

}  // namespace flow2
