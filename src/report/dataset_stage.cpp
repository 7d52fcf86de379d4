// The dataset analysis: the splits training would use (load_dataset with skip_invalid, so every
// invalid line is listed rather than fatal), plus any other .jsonl file of the directory.
#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/dataset.h"
#include "flow2/dataset_stats.h"
#include "flow2/error.h"
#include "flow2/model.h"
#include "report/stages.h"

namespace flow2::report {
namespace {

Json issues_json(const DatasetStats& stats) {
  Json invalid = Json::array();
  for (const auto& split : stats.splits) {
    for (const auto& issue : split.skipped) {
      invalid.push_back({{"split", split.name},
                         {"file", issue.file.string()},
                         {"line", issue.line},
                         {"problem", issue.message}});
    }
  }
  return invalid;
}

}  // namespace

Json dataset_stage(const std::filesystem::path& model, const ReportOptions& options) {
  Checkpoint checkpoint = open_checkpoint(model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  check(tokenizer.has_value(), "{}: no tokenizer to tokenize the dataset with", model.string());
  TokenizerConfig tokenizer_config = checkpoint_tokenizer_config(checkpoint);
  ChatFormatter formatter(tokenizer_config, checkpoint.config, *tokenizer);
  DatasetOptions dataset_options;
  dataset_options.max_seq_len = options.max_seq_len;
  dataset_options.seed = options.seed;
  dataset_options.skip_invalid = true;
  dataset_options.eos_ids = end_of_turn_ids(checkpoint.config, tokenizer_config, *tokenizer);

  Json out;
  out["status"] = "ok";
  out["path"] = options.data.string();
  out["tokenizer_from"] = model.string();
  Dataset dataset = load_dataset(options.data, *tokenizer, formatter, dataset_options);
  DatasetStats stats = dataset_stats(dataset);
  out["stats"] = stats_json(stats);
  Json invalid = issues_json(stats);

  // Files of the directory that training does not read, each analysed on its own.
  Json other = Json::array();
  if (std::filesystem::is_directory(options.data)) {
    DatasetFiles used = dataset_files(options.data);
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(options.data)) {
      const auto& path = entry.path();
      if (path.extension() != ".jsonl" || path == used.train) continue;
      if ((used.valid && path == *used.valid) || (used.test && path == *used.test)) continue;
      files.push_back(path);
    }
    std::sort(files.begin(), files.end());
    DatasetOptions single = dataset_options;
    single.val_split = 0;
    for (const auto& file : files) {
      Json row;
      row["file"] = file.string();
      try {
        DatasetStats file_stats = dataset_stats(load_dataset(file, *tokenizer, formatter, single));
        row["stats"] = stats_json(file_stats).at("splits").at(0);
        for (auto& issue : issues_json(file_stats)) {
          issue["split"] = "not used";
          invalid.push_back(issue);
        }
      } catch (const std::exception& error) {
        row["error"] = error.what();
      }
      other.push_back(row);
    }
  }
  out["other_files"] = other;
  out["invalid_lines"] = invalid;
  return out;
}

}  // namespace flow2::report
