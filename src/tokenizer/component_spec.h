// Shared parsing of tokenizer.json pipeline components: every component is an object with a
// "type", and a Sequence holds a list of components of its own kind.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "flow2/error.h"

namespace flow2 {

// The "type" of a component object; `kind` ("decoder", ...) names it in errors.
inline std::string component_type(const nlohmann::json& spec, const std::string& where,
                                  const char* kind) {
  check(spec.is_object() && spec.contains("type") && spec["type"].is_string(),
        "{}: {} must be an object with a 'type'", where, kind);
  return spec["type"].get<std::string>();
}

// The components listed under `key` of a Sequence, built by `make` (null entries skipped).
template <typename Component, typename Factory>
std::vector<std::unique_ptr<Component>> component_list(const nlohmann::json& spec, const char* key,
                                                       const std::string& where, Factory&& make) {
  auto list = spec.find(key);
  check(list != spec.end() && list->is_array(), "{}: missing '{}' list", where, key);
  std::vector<std::unique_ptr<Component>> steps;
  for (const auto& step : *list) {
    if (auto component = make(step)) steps.push_back(std::move(component));
  }
  return steps;
}

}  // namespace flow2
