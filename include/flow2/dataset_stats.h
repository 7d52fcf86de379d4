// Numbers about a loaded dataset, for the CLI and the training report: per split the example
// count, format, token lengths, truncations and skipped lines.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "flow2/dataset.h"

namespace flow2 {

// Over the examples' token counts before truncation; median and p95 interpolate linearly
// between ranks (as numpy.percentile).
struct LengthSummary {
  int64_t min = 0;
  int64_t max = 0;
  double mean = 0;
  double median = 0;
  double p95 = 0;
};
LengthSummary summarize_lengths(std::vector<int64_t> lengths);

struct SplitStats {
  std::string name;
  std::string source;
  std::string format;
  bool from_val_split = false;
  size_t examples = 0;
  LengthSummary lengths;
  size_t truncated = 0;
  int64_t tokens = 0;              // after truncation
  int64_t trained_tokens = 0;      // label mask 1
  size_t without_targets = 0;      // examples whose trained tokens were all cut off
  std::vector<DataIssue> skipped;  // invalid lines dropped by skip_invalid
};

struct DatasetStats {
  std::vector<SplitStats> splits;  // train, valid (when not empty), test (when not empty)
  int64_t max_seq_len = 0;
  int64_t boundary_merges = 0;
};

SplitStats split_stats(const DatasetSplit& split);
DatasetStats dataset_stats(const Dataset& dataset);
nlohmann::ordered_json stats_json(const DatasetStats& stats);

}  // namespace flow2
