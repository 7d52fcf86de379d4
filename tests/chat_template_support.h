// Helpers for the chat-template tests: render a template, or get the error it raises.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "flow2/chat_template.h"
#include "flow2/error.h"

namespace flow2::testing {

inline std::string render(std::string_view source, const nlohmann::ordered_json& context = {}) {
  nlohmann::ordered_json object = context.is_null() ? nlohmann::ordered_json::object() : context;
  return ChatTemplate::parse(source).render_ordered(object);
}

// The message of the flow2::Error that parsing or rendering raises, or "" if none.
inline std::string render_error(std::string_view source,
                                const nlohmann::ordered_json& context = {}) {
  try {
    render(source, context);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

}  // namespace flow2::testing
