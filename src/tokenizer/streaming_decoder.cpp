// Incremental detokenization: decode a short window of recent ids twice (with and without the
// newest) and emit the difference once it no longer ends in an incomplete character.
#include "flow2/tokenizer.h"

namespace flow2 {
namespace {

bool ends_incomplete(const std::string& text) {
  return text.size() >= 3 && text.compare(text.size() - 3, 3, "\xef\xbf\xbd") == 0;
}

}  // namespace

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamingDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::span<const int32_t> all(ids_);
  std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string now = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  // Hold back while the newest bytes do not yet form a whole character.
  if (now.size() <= before.size() || ends_incomplete(now)) return {};
  std::string emitted = now.substr(before.size());
  prefix_ = read_;
  read_ = ids_.size();
  return emitted;
}

std::string StreamingDecoder::finish() {
  std::span<const int32_t> all(ids_);
  std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string now = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  prefix_ = read_ = ids_.size();
  return now.size() > before.size() ? now.substr(before.size()) : std::string();
}

}  // namespace flow2
