// tokenizer.json decoders: turn the token strings of ids back into text. ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder, Sequence.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace flow2 {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Transforms the token strings in place (a chain step); the result is joined afterwards.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& where);

}  // namespace flow2
