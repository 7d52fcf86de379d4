#include "tokenizer/pattern.h"

#include <nlohmann/json.hpp>

#include "flow2/error.h"

namespace flow2 {

Pattern Pattern::from_json(const nlohmann::json& spec, const std::string& where) {
  check(spec.is_object() && spec.size() == 1,
        "{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", where);
  auto it = spec.begin();
  check(it.value().is_string(), "{}: pattern value must be a string", where);
  const std::string text = it.value().get<std::string>();
  if (it.key() == "String") return literal(text);
  check(it.key() == "Regex", "{}: unknown pattern kind '{}'", where, it.key());
  Pattern pattern;
  pattern.regex_.emplace(text, where);
  return pattern;
}

Pattern Pattern::literal(std::string text) {
  Pattern pattern;
  pattern.literal_ = std::move(text);
  return pattern;
}

std::vector<std::pair<size_t, size_t>> Pattern::find_all(std::string_view text) const {
  if (regex_) return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> matches;
  if (literal_.empty()) return matches;
  for (size_t at = text.find(literal_); at != std::string_view::npos;
       at = text.find(literal_, at + literal_.size())) {
    matches.emplace_back(at, at + literal_.size());
  }
  return matches;
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  size_t last = 0;
  for (const auto& [begin, end] : find_all(text)) {
    out.append(text.substr(last, begin - last));
    out.append(content);
    last = end;
  }
  out.append(text.substr(last));
  return out;
}

}  // namespace flow2
