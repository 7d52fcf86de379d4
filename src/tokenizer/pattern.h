// A tokenizer.json pattern: {"String": "literal"} or {"Regex": "..."}.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/regex.h"

namespace flow2 {

class Pattern {
 public:
  static Pattern from_json(const nlohmann::json& spec, const std::string& where);
  static Pattern literal(std::string text);

  // Non-empty, non-overlapping matches, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // Replaces every match by `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::optional<Regex> regex_;
};

}  // namespace flow2
