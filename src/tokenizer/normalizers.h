// tokenizer.json normalizers: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace,
// Sequence (and BertNormalizer's common options).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace flow2 {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string_view text) const = 0;
};

// Builds the normalizer `spec` describes; null gives nullptr. Unknown types are errors naming
// `where`.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& where);

}  // namespace flow2
