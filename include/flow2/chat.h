// Chat prompts: the model's own chat template (tokenizer_config.json or GGUF metadata), or a
// documented default for its family, rendered over a conversation.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "flow2/model_config.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"

namespace flow2 {

class ChatTemplate;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// The default templates for models that ship none:
// - GPT-2 / DialoGPT: each turn's text followed by the EOS token, as DialoGPT was trained;
// - vocabularies with Llama 3's header tokens: the Llama 3 header format;
// - everything else: ChatML (<|im_start|>role\ncontent<|im_end|>\n).
enum class DefaultChatFormat { DialoGpt, Llama3, ChatMl };
DefaultChatFormat default_chat_format(const ModelConfig& config, const Tokenizer& tokenizer);
const std::string& default_chat_template(DefaultChatFormat format);

class ChatFormatter {
 public:
  // Uses `tokenizer_config`'s template when it has one, else the family default.
  ChatFormatter(const TokenizerConfig& tokenizer_config, const ModelConfig& config,
                const Tokenizer& tokenizer);
  // The prompt text for `messages`; with `add_generation_prompt`, ready for the reply.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // The same with the tool definitions a template reads as `tools` (a JSON array; null: none).
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                     const nlohmann::json& tools) const;
  bool uses_default() const { return uses_default_; }

 private:
  std::shared_ptr<const ChatTemplate> template_;
  std::string bos_token_;
  std::string eos_token_;
  bool uses_default_ = false;
};

}  // namespace flow2
