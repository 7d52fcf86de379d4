// The four dataset line formats: detection (one format per file) and validation of each line
// into a Record that the renderer turns into tokens.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "flow2/chat.h"
#include "flow2/dataset.h"
#include "train/jsonl_reader.h"

namespace flow2 {

struct Record {
  int64_t line = 0;
  DatasetFormat format = DatasetFormat::Text;
  std::string text;                   // {"text"}
  std::vector<ChatMessage> messages;  // the chat formats; prompt/* become user + assistant
  // {"messages"}' optional "tools", passed to the chat template as `tools`.
  std::optional<nlohmann::json> tools;
};

struct ParsedFile {
  std::optional<DatasetFormat> format;  // from the first line with a recognizable format
  int64_t format_line = 0;              // that line
  std::vector<Record> records;
  std::vector<LineError> errors;  // the reader's errors and the lines that failed validation
};

// The format a line's keys announce, if any ("messages" > "prompt"+"completion" >
// "prompt"+"response" > "text").
std::optional<DatasetFormat> detect_line_format(const nlohmann::json& object);

// Validates every line of `file` against the file's format.
ParsedFile parse_dataset_lines(const JsonlFile& file);

}  // namespace flow2
