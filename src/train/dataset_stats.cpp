#include "flow2/dataset_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace flow2 {
namespace {

double percentile(const std::vector<int64_t>& sorted, double q) {
  double rank = q * static_cast<double>(sorted.size() - 1);
  size_t below = static_cast<size_t>(std::floor(rank));
  size_t above = std::min(below + 1, sorted.size() - 1);
  double fraction = rank - static_cast<double>(below);
  return static_cast<double>(sorted[below]) +
         fraction * static_cast<double>(sorted[above] - sorted[below]);
}

}  // namespace

LengthSummary summarize_lengths(std::vector<int64_t> lengths) {
  LengthSummary summary;
  if (lengths.empty()) return summary;
  std::sort(lengths.begin(), lengths.end());
  summary.min = lengths.front();
  summary.max = lengths.back();
  summary.mean = static_cast<double>(std::accumulate(lengths.begin(), lengths.end(), int64_t{0})) /
                 static_cast<double>(lengths.size());
  summary.median = percentile(lengths, 0.5);
  summary.p95 = percentile(lengths, 0.95);
  return summary;
}

SplitStats split_stats(const DatasetSplit& split) {
  SplitStats stats;
  stats.name = split.name;
  stats.source = split.source.string();
  stats.format = std::string(dataset_format_name(split.format));
  stats.from_val_split = split.from_val_split;
  stats.examples = split.examples.size();
  std::vector<int64_t> lengths;
  for (const Example& example : split.examples) {
    lengths.push_back(example.original_length);
    stats.truncated += example.truncated;
    stats.tokens += static_cast<int64_t>(example.tokens.size());
    int64_t trained = std::count(example.label_mask.begin(), example.label_mask.end(), 1);
    stats.trained_tokens += trained;
    stats.without_targets += trained == 0;
  }
  stats.lengths = summarize_lengths(std::move(lengths));
  stats.skipped = split.skipped;
  return stats;
}

DatasetStats dataset_stats(const Dataset& dataset) {
  DatasetStats stats;
  stats.max_seq_len = dataset.max_seq_len;
  stats.boundary_merges = dataset.boundary_merges;
  stats.splits.push_back(split_stats(dataset.train));
  if (!dataset.valid.empty()) stats.splits.push_back(split_stats(dataset.valid));
  if (!dataset.test.empty()) stats.splits.push_back(split_stats(dataset.test));
  return stats;
}

nlohmann::ordered_json stats_json(const DatasetStats& stats) {
  nlohmann::ordered_json out;
  out["max_seq_len"] = stats.max_seq_len;
  out["boundary_merges"] = stats.boundary_merges;
  out["splits"] = nlohmann::ordered_json::array();
  for (const auto& split : stats.splits) {
    nlohmann::ordered_json row;
    row["name"] = split.name;
    row["source"] = split.source;
    row["format"] = split.format;
    row["from_val_split"] = split.from_val_split;
    row["examples"] = split.examples;
    row["tokens"] = {{"min", split.lengths.min},
                     {"mean", split.lengths.mean},
                     {"median", split.lengths.median},
                     {"max", split.lengths.max},
                     {"p95", split.lengths.p95}};
    row["truncated"] = split.truncated;
    row["total_tokens"] = split.tokens;
    row["trained_tokens"] = split.trained_tokens;
    row["without_targets"] = split.without_targets;
    row["skipped"] = split.skipped.size();
    row["skipped_lines"] = nlohmann::ordered_json::array();
    for (const auto& issue : split.skipped) {
      row["skipped_lines"].push_back({{"line", issue.line}, {"problem", issue.message}});
    }
    out["splits"].push_back(row);
  }
  return out;
}

}  // namespace flow2
