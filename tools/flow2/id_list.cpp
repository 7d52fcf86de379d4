#include <charconv>

#include "commands.h"
#include "flow2/error.h"

namespace flow2::cli {

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string_view item(text.data() + start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int32_t value = 0;
    auto [rest, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    check(!item.empty() && error == std::errc() && rest == item.data() + item.size() && value >= 0,
          "{}: '{}' is not a token id (expected comma-separated non-negative integers)", option,
          item);
    ids.push_back(value);
    start = end + 1;
  }
  return ids;
}

}  // namespace flow2::cli
