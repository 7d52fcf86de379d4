#include "tokenizer/pre_tokenizers.h"

#include "tokenizer/component_spec.h"

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "flow2/error.h"
#include "tokenizer/pattern.h"

namespace flow2 {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenization regex, used by ByteLevel when use_regex is on.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

bool bool_field(const json& spec, const char* key, bool fallback) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

SplitBehavior parse_behavior(const json& spec, const std::string& where, SplitBehavior fallback) {
  auto it = spec.find("behavior");
  if (it == spec.end()) return fallback;
  check(it->is_string(), "{}: 'behavior' must be a string", where);
  const std::string name = it->get<std::string>();
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail("{}: unknown split behavior '{}'", where, name);
}

// Applies a per-piece transformation that may turn one piece into several.
template <typename Function>
void for_each_piece(std::vector<Piece>& pieces, Function&& split) {
  std::vector<Piece> result;
  result.reserve(pieces.size());
  for (const auto& piece : pieces) {
    for (auto& part : split(piece)) result.push_back(std::move(part));
  }
  pieces = std::move(result);
}

// Matches of single characters that satisfy `predicate`, merged into runs when `runs` is set.
template <typename Predicate>
std::vector<std::pair<size_t, size_t>> character_matches(std::string_view text,
                                                         Predicate&& predicate, bool runs) {
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t position = 0; position < text.size();) {
    size_t length = 0;
    char32_t c = utf8::decode(text, position, &length);
    if (predicate(c)) {
      if (runs && !matches.empty() && matches.back().second == position) {
        matches.back().second = position + length;
      } else {
        matches.emplace_back(position, position + length);
      }
    }
    position += length;
  }
  return matches;
}

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {
    if (use_regex_) regex_.emplace(kGpt2Pattern, "ByteLevel");
  }
  void apply(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](const Piece& piece) {
      Piece prefixed = piece;
      if (add_prefix_space_ && !prefixed.text.starts_with(' '))
        prefixed.text = utf8::prepend(" ", prefixed.text);
      std::vector<Piece> parts = regex_ ? split_piece(prefixed, regex_->find_all(prefixed.text),
                                                      SplitBehavior::Isolated, false)
                                        : std::vector<Piece>{prefixed};
      const auto& map = utf8::byte_to_unicode();
      for (auto& part : parts) {
        std::string mapped;
        mapped.reserve(part.text.size() * 2);
        for (unsigned char byte : part.text) mapped += map[byte];
        part.text = std::move(mapped);
      }
      return parts;
    });
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
  std::optional<Regex> regex_;
};

class Split final : public PreTokenizer {
 public:
  Split(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void apply(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](const Piece& piece) {
      return split_piece(piece, pattern_.find_all(piece.text), behavior_, invert_);
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Prepend { Always, First, Never };
  Metaspace(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void apply(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](const Piece& piece) {
      Piece replaced{Pattern::literal(" ").replace_all(piece.text, replacement_), piece.at_start};
      bool prepend = prepend_ == Prepend::Always || (prepend_ == Prepend::First && piece.at_start);
      if (prepend && !replaced.text.starts_with(replacement_)) {
        replaced.text = utf8::prepend(replacement_, replaced.text);
      }
      if (!split_) return std::vector<Piece>{replaced};
      return split_piece(replaced, Pattern::literal(replacement_).find_all(replaced.text),
                         SplitBehavior::MergedWithNext, false);
    });
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

// Splits by a per-character predicate: Digits, WhitespaceSplit, Punctuation.
class CharacterSplit final : public PreTokenizer {
 public:
  using Predicate = bool (*)(char32_t);
  CharacterSplit(Predicate predicate, bool runs, SplitBehavior behavior)
      : predicate_(predicate), runs_(runs), behavior_(behavior) {}
  void apply(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](const Piece& piece) {
      return split_piece(piece, character_matches(piece.text, predicate_, runs_), behavior_, false);
    });
  }

 private:
  Predicate predicate_;
  bool runs_;
  SplitBehavior behavior_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

Metaspace::Prepend parse_prepend_scheme(const json& spec, const std::string& where) {
  auto scheme = spec.find("prepend_scheme");
  if (scheme != spec.end() && scheme->is_string()) {
    const std::string name = scheme->get<std::string>();
    if (name == "always") return Metaspace::Prepend::Always;
    if (name == "first") return Metaspace::Prepend::First;
    if (name == "never") return Metaspace::Prepend::Never;
    fail("{}: unknown prepend_scheme '{}'", where, name);
  }
  // Older files say add_prefix_space instead.
  return bool_field(spec, "add_prefix_space", true) ? Metaspace::Prepend::Always
                                                    : Metaspace::Prepend::Never;
}

}  // namespace

std::vector<Piece> split_piece(const Piece& piece,
                               const std::vector<std::pair<size_t, size_t>>& matches,
                               SplitBehavior behavior, bool invert) {
  // The whole text as alternating segments, each flagged as matched or not.
  struct Segment {
    size_t begin, end;
    bool matched;
  };
  std::vector<Segment> segments;
  size_t last = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > last) segments.push_back({last, begin, invert});
    segments.push_back({begin, end, !invert});
    last = end;
  }
  if (last < piece.text.size()) segments.push_back({last, piece.text.size(), invert});

  std::vector<Segment> kept;
  bool previous_matched = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      kept = segments;
      break;
    case SplitBehavior::Removed:
      for (const auto& s : segments) {
        if (!s.matched) kept.push_back(s);
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& s : segments) {
        if (s.matched && !previous_matched && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        previous_matched = s.matched;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->matched && !previous_matched && !kept.empty()) {
          kept.back().begin = it->begin;
        } else {
          kept.push_back(*it);
        }
        previous_matched = it->matched;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    case SplitBehavior::Contiguous:
      for (const auto& s : segments) {
        // Adjacent segments of the same kind join (after `invert`, unmatched ones too).
        if (!kept.empty() && s.matched == previous_matched) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        previous_matched = s.matched;
      }
      break;
  }
  std::vector<Piece> pieces;
  pieces.reserve(kept.size());
  for (const auto& s : kept) {
    pieces.push_back({piece.text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
  }
  return pieces;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = component_type(spec, where, "pre_tokenizer");
  const std::string here = fmt::format("{} pre_tokenizer {}", where, type);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(bool_field(spec, "add_prefix_space", true),
                                       bool_field(spec, "use_regex", true));
  }
  if (type == "Split") {
    auto pattern = spec.find("pattern");
    check(pattern != spec.end(), "{}: missing 'pattern'", here);
    return std::make_unique<Split>(Pattern::from_json(*pattern, here),
                                   parse_behavior(spec, here, SplitBehavior::Isolated),
                                   bool_field(spec, "invert", false));
  }
  if (type == "Metaspace") {
    auto replacement = spec.find("replacement");
    std::string text = replacement != spec.end() && replacement->is_string()
                           ? replacement->get<std::string>()
                           : "\u2581";
    return std::make_unique<Metaspace>(text, parse_prepend_scheme(spec, here),
                                       bool_field(spec, "split", true));
  }
  if (type == "Digits") {
    return std::make_unique<CharacterSplit>(
        utf8::is_numeric, !bool_field(spec, "individual_digits", false), SplitBehavior::Isolated);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharacterSplit>(utf8::is_whitespace, true, SplitBehavior::Removed);
  }
  if (type == "Whitespace") {
    // \w+|[^\w\s]+ kept, whitespace dropped; \w spelled out as the reference's Unicode word
    // class (letters, marks, digits, connectors), which PCRE2's \w is narrower than.
    constexpr const char* kWord = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])";
    constexpr const char* kOther = R"([^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\s])";
    std::string regex = std::string(kWord) + "+|" + kOther + "+";
    return std::make_unique<Split>(Pattern::from_json({{"Regex", regex}}, here),
                                   SplitBehavior::Removed, true);
  }
  if (type == "Punctuation") {
    return std::make_unique<CharacterSplit>(utf8::is_punctuation, false,
                                            parse_behavior(spec, here, SplitBehavior::Isolated));
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(
        std::make_unique<CharacterSplit>(utf8::is_whitespace, true, SplitBehavior::Removed));
    steps.push_back(
        std::make_unique<CharacterSplit>(utf8::is_punctuation, false, SplitBehavior::Isolated));
    return std::make_unique<Sequence>(std::move(steps));
  }
  if (type == "Sequence") {
    return std::make_unique<Sequence>(component_list<PreTokenizer>(
        spec, "pretokenizers", here,
        [&](const json& step) { return make_pre_tokenizer(step, where); }));
  }
  fail("{}: unsupported pre_tokenizer type '{}'", where, type);
}

}  // namespace flow2
