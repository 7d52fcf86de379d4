// JSON Lines files: one JSON object per line, blank lines ignored. Every bad line is recorded
// (not only the first) so that a dataset's problems can be reported together.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace flow2 {

struct JsonlLine {
  int64_t number = 0;  // 1-based
  nlohmann::json value;
};

struct LineError {
  int64_t line = 0;  // 1-based; 0 for a problem with the whole file
  std::string message;
};

struct JsonlFile {
  std::filesystem::path path;
  std::vector<JsonlLine> lines;  // the lines that hold a JSON object
  std::vector<LineError> errors;
  bool empty = false;  // no line held anything but whitespace
};

// Fails (flow2::Error) only when the file cannot be read.
JsonlFile read_jsonl(const std::filesystem::path& path);

}  // namespace flow2
