#include "train/dataset_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "flow2/error.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::vector<std::string> required_keys(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::PromptResponse:
      return {"prompt", "response"};
    case DatasetFormat::PromptCompletion:
      return {"prompt", "completion"};
    case DatasetFormat::Messages:
      return {"messages"};
    case DatasetFormat::Text:
      return {"text"};
  }
  return {};
}

std::string key_list(const json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(fmt::format("\"{}\"", key));
  return keys.empty() ? "none" : fmt::format("{}", fmt::join(keys, ", "));
}

// Problems with one line; an exception carries the message to the caller.
[[noreturn]] void bad(const std::string& message) {
  throw Error(message);
}

std::string string_field(const json& object, const std::string& key) {
  const json& value = object.at(key);
  if (!value.is_string()) {
    bad(fmt::format("field \"{}\" must be a string, got {}", key, value.type_name()));
  }
  return value.get<std::string>();
}

bool known_role(const std::string& role) {
  static const std::array<std::string, 4> roles = {"system", "user", "assistant", "tool"};
  for (const auto& known : roles) {
    if (role == known) return true;
  }
  return false;
}

std::vector<ChatMessage> read_messages(const json& object) {
  const json& list = object.at("messages");
  if (!list.is_array()) bad(fmt::format("\"messages\" must be an array, got {}", list.type_name()));
  if (list.empty()) bad("\"messages\" is empty");
  std::vector<ChatMessage> messages;
  bool has_assistant = false;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& message = list[i];
    if (!message.is_object()) {
      bad(fmt::format("messages[{}] must be an object, got {}", i, message.type_name()));
    }
    for (const char* key : {"role", "content"}) {
      if (!message.contains(key)) bad(fmt::format("messages[{}]: missing field \"{}\"", i, key));
      if (!message[key].is_string()) {
        bad(fmt::format("messages[{}]: field \"{}\" must be a string, got {}", i, key,
                        message[key].type_name()));
      }
    }
    std::string role = message["role"];
    if (!known_role(role)) {
      bad(fmt::format("messages[{}]: unknown role \"{}\" (system, user, assistant, tool)", i,
                      role));
    }
    has_assistant = has_assistant || role == "assistant";
    messages.push_back({role, message["content"].get<std::string>()});
  }
  if (!has_assistant) bad("\"messages\" has no assistant message: nothing to train on");
  return messages;
}

Record read_record(const json& object, DatasetFormat format, int64_t line) {
  Record record;
  record.line = line;
  record.format = format;
  switch (format) {
    case DatasetFormat::PromptResponse:
    case DatasetFormat::PromptCompletion: {
      std::string prompt = string_field(object, "prompt");
      std::string reply =
          string_field(object, format == DatasetFormat::PromptResponse ? "response" : "completion");
      record.messages = {{"user", std::move(prompt)}, {"assistant", std::move(reply)}};
      break;
    }
    case DatasetFormat::Messages:
      record.messages = read_messages(object);
      if (object.contains("tools") && !object["tools"].is_null()) {
        if (!object["tools"].is_array()) {
          bad(fmt::format("\"tools\" must be an array, got {}", object["tools"].type_name()));
        }
        record.tools = object["tools"];
      }
      break;
    case DatasetFormat::Text:
      record.text = string_field(object, "text");
      if (record.text.empty()) bad("field \"text\" is empty");
      break;
  }
  return record;
}

std::string missing_fields_message(const json& object, std::optional<DatasetFormat> format) {
  if (!format) {
    return fmt::format(
        "unknown format: expected \"prompt\"+\"response\", \"prompt\"+\"completion\", "
        "\"messages\" or \"text\"; keys: {}",
        key_list(object));
  }
  std::vector<std::string> missing;
  for (const auto& key : required_keys(*format)) {
    if (!object.contains(key)) missing.push_back(fmt::format("\"{}\"", key));
  }
  return fmt::format("missing field {} (the file is {})", fmt::join(missing, ", "),
                     dataset_format_name(*format));
}

}  // namespace

std::string_view dataset_format_name(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::PromptResponse:
      return "prompt/response";
    case DatasetFormat::PromptCompletion:
      return "prompt/completion";
    case DatasetFormat::Messages:
      return "messages";
    case DatasetFormat::Text:
      return "text";
  }
  return "?";
}

std::optional<DatasetFormat> detect_line_format(const json& object) {
  if (object.contains("messages")) return DatasetFormat::Messages;
  if (object.contains("prompt") && object.contains("completion")) {
    return DatasetFormat::PromptCompletion;
  }
  if (object.contains("prompt") && object.contains("response")) {
    return DatasetFormat::PromptResponse;
  }
  if (object.contains("text")) return DatasetFormat::Text;
  return std::nullopt;
}

ParsedFile parse_dataset_lines(const JsonlFile& file) {
  ParsedFile parsed;
  parsed.errors = file.errors;
  for (const auto& line : file.lines) {
    if (auto format = detect_line_format(line.value)) {
      parsed.format = format;
      parsed.format_line = line.number;
      break;
    }
  }
  for (const auto& line : file.lines) {
    std::optional<DatasetFormat> format = detect_line_format(line.value);
    if (!format) {
      parsed.errors.push_back({line.number, missing_fields_message(line.value, parsed.format)});
      continue;
    }
    if (*format != *parsed.format) {
      parsed.errors.push_back(
          {line.number, fmt::format("format changes mid-file: this line is {} but the file is {} "
                                    "(from line {})",
                                    dataset_format_name(*format),
                                    dataset_format_name(*parsed.format), parsed.format_line)});
      continue;
    }
    try {
      parsed.records.push_back(read_record(line.value, *format, line.number));
    } catch (const Error& error) {
      parsed.errors.push_back({line.number, error.what()});
    }
  }
  std::stable_sort(parsed.errors.begin(), parsed.errors.end(),
                   [](const LineError& a, const LineError& b) { return a.line < b.line; });
  return parsed;
}

}  // namespace flow2
