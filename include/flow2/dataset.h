// Fine-tuning datasets: JSONL files in one of four formats, rendered with the model's chat
// template and tokenized into examples with a per-token label mask.
//
// A dataset is a .jsonl file (the train split) or a directory with train.jsonl and optional
// valid.jsonl and test.jsonl. Each file holds one format, detected from its lines:
//   {"prompt", "response"}, {"prompt", "completion"}: a user turn and the assistant's reply;
//   {"messages": [{"role", "content"}, ...], "tools"?}: a conversation;
//   {"text"}: plain text, every token trained.
// Invalid lines make loading fail with every bad line named (file:line: problem), unless
// `skip_invalid` is set, in which case they are dropped and reported.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flow2/chat.h"
#include "flow2/model_config.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"

namespace flow2 {

enum class DatasetFormat { PromptResponse, PromptCompletion, Messages, Text };
std::string_view dataset_format_name(DatasetFormat format);  // "prompt/response", ...

struct DatasetOptions {
  int64_t max_seq_len = 2048;  // longer examples keep their first max_seq_len tokens
  double val_split = 0.1;      // fraction of train held out when there is no valid.jsonl
  uint64_t seed = 0;           // for the train/valid split
  bool skip_invalid = false;   // drop bad lines (reported) instead of failing
  // Train only on assistant tokens for the chat formats (prompt/response, prompt/completion,
  // messages); nullopt means yes. {"text"} examples train on every token regardless.
  std::optional<bool> mask_prompt;
  // End-of-turn ids (see end_of_turn_ids); the first is appended to an example whose last
  // assistant turn has none of them ({"text"}: whose last token is not it). Empty: never.
  std::vector<int32_t> eos_ids;
};

// The ids that end a turn: the tokenizer_config eos_token first, then the model's eos ids.
std::vector<int32_t> end_of_turn_ids(const ModelConfig& config,
                                     const TokenizerConfig& tokenizer_config,
                                     const Tokenizer& tokenizer);

struct Example {
  std::vector<int32_t> tokens;
  // label_mask[t] is 1 when tokens[t] is a training target (predicted from tokens before t).
  std::vector<uint8_t> label_mask;
  int64_t line = 0;             // 1-based line in the source file
  int64_t original_length = 0;  // tokens before truncation
  bool truncated = false;
};

// A line that was dropped by skip_invalid.
struct DataIssue {
  std::filesystem::path file;
  int64_t line = 0;  // 0: the whole file
  std::string message;
};

struct DatasetSplit {
  std::string name;              // "train", "valid", "test"
  std::filesystem::path source;  // the file it came from
  DatasetFormat format = DatasetFormat::Text;
  std::vector<Example> examples;
  std::vector<DataIssue> skipped;  // lines of `source` dropped by skip_invalid
  bool from_val_split = false;     // valid taken out of train by val_split
  bool empty() const { return examples.empty(); }
};

struct Dataset {
  DatasetSplit train;
  DatasetSplit valid;  // may be empty (no valid.jsonl and val_split 0)
  DatasetSplit test;   // empty without test.jsonl
  // Assistant turns whose token boundary did not fall between tokens (a BPE merge across the
  // prompt/response boundary); the straddling token is trained on.
  int64_t boundary_merges = 0;
  int64_t max_seq_len = 0;  // the limit examples were truncated to
};

Dataset load_dataset(const std::filesystem::path& path, const Tokenizer& tokenizer,
                     const ChatFormatter& formatter, const DatasetOptions& options = {});

// The files of a dataset path: a file is the train split; a directory must hold train.jsonl.
struct DatasetFiles {
  std::filesystem::path train;
  std::optional<std::filesystem::path> valid;
  std::optional<std::filesystem::path> test;
};
DatasetFiles dataset_files(const std::filesystem::path& path);

// Indices of `count` examples split deterministically by `seed`: `valid_fraction` of them
// (rounded, at least one when the fraction is positive and count >= 2, never all) go to the
// second list. Both lists are in ascending order.
std::pair<std::vector<size_t>, std::vector<size_t>> split_indices(size_t count,
                                                                  double valid_fraction,
                                                                  uint64_t seed);

}  // namespace flow2
