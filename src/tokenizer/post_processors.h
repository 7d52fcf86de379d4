// tokenizer.json post-processors: what encode(add_special_tokens=true) adds around the ids.
// TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel (ids unchanged), Sequence.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flow2 {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens of a single sequence around `ids`.
  virtual std::vector<int32_t> process(std::vector<int32_t> ids) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec,
                                                   const std::string& where);

}  // namespace flow2
