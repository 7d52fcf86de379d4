#include "flow2/chat.h"

#include <nlohmann/json.hpp>

#include "flow2/chat_template.h"

namespace flow2 {

DefaultChatFormat default_chat_format(const ModelConfig& config, const Tokenizer& tokenizer) {
  if (config.family == ModelFamily::Gpt2) return DefaultChatFormat::DialoGpt;
  if (tokenizer.token_to_id("<|start_header_id|>")) return DefaultChatFormat::Llama3;
  return DefaultChatFormat::ChatMl;
}

const std::string& default_chat_template(DefaultChatFormat format) {
  static const std::string dialogpt =
      "{% for message in messages %}{{ message['content'] }}{{ eos_token }}{% endfor %}";
  static const std::string llama3 =
      "{{ bos_token }}{% for message in messages %}"
      "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
      "message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
      "{% endif %}";
  static const std::string chatml =
      "{% for message in messages %}"
      "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  switch (format) {
    case DefaultChatFormat::DialoGpt:
      return dialogpt;
    case DefaultChatFormat::Llama3:
      return llama3;
    case DefaultChatFormat::ChatMl:
      return chatml;
  }
  return chatml;
}

ChatFormatter::ChatFormatter(const TokenizerConfig& tokenizer_config, const ModelConfig& config,
                             const Tokenizer& tokenizer)
    : bos_token_(tokenizer_config.bos_token), eos_token_(tokenizer_config.eos_token) {
  if (tokenizer_config.chat_template) {
    template_ = std::make_shared<const ChatTemplate>(
        ChatTemplate::parse(*tokenizer_config.chat_template, "chat_template"));
  } else {
    template_ = std::make_shared<const ChatTemplate>(ChatTemplate::parse(
        default_chat_template(default_chat_format(config, tokenizer)), "default chat_template"));
    uses_default_ = true;
  }
  // Without tokenizer_config.json the special tokens come from the model's eos/bos ids.
  if (eos_token_.empty() && !config.eos_token_ids.empty()) {
    eos_token_ = tokenizer.id_to_token(static_cast<int32_t>(config.eos_token_ids[0])).value_or("");
  }
  if (bos_token_.empty() && config.bos_token_id) {
    bos_token_ = tokenizer.id_to_token(static_cast<int32_t>(*config.bos_token_id)).value_or("");
  }
}

std::string ChatFormatter::render(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) const {
  return render(messages, add_generation_prompt, nullptr);
}

std::string ChatFormatter::render(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt, const nlohmann::json& tools) const {
  nlohmann::ordered_json context;
  context["messages"] = nlohmann::ordered_json::array();
  for (const auto& message : messages) {
    context["messages"].push_back({{"role", message.role}, {"content", message.content}});
  }
  context["add_generation_prompt"] = add_generation_prompt;
  context["bos_token"] = bos_token_;
  context["eos_token"] = eos_token_;
  if (!tools.is_null()) context["tools"] = nlohmann::ordered_json::parse(tools.dump());
  return template_->render_ordered(context);
}

}  // namespace flow2
