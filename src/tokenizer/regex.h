// Unicode regular expressions through PCRE2 (UTF + UCP, JIT-compiled), with the semantics the
// Hugging Face tokenizers' patterns rely on: \p{L}, \p{N}, lookahead, (?i:...).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flow2 {

class Regex {
 public:
  // Compiles `pattern`; a malformed pattern is a flow2::Error naming `where`.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Every non-empty, non-overlapping match, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

// Escapes `literal` so that it matches only itself.
std::string regex_escape(std::string_view literal);

}  // namespace flow2
