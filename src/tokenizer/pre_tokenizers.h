// tokenizer.json pre-tokenizers: they cut normalized text into pieces that the model encodes
// one by one. ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation,
// BertPreTokenizer, Sequence.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace flow2 {

struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original input (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec,
                                                 const std::string& where);

// How a Split keeps the pieces its pattern matches.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Cuts `piece` at `matches` ([begin, end) offsets) as `behavior` says; `invert` swaps the roles
// of matched and unmatched text.
std::vector<Piece> split_piece(const Piece& piece,
                               const std::vector<std::pair<size_t, size_t>>& matches,
                               SplitBehavior behavior, bool invert);

}  // namespace flow2
