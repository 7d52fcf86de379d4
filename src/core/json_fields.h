// Typed reads of JSON object fields with errors that name the source file and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace flow2 {

// Reads and parses a JSON file; errors name the file and the position of a syntax error.
nlohmann::json read_json_file(const std::filesystem::path& path);

// A field of `object` that may be absent or null.
std::optional<int64_t> optional_int(const nlohmann::json& object, const std::string& key,
                                    const std::string& source);
std::optional<double> optional_number(const nlohmann::json& object, const std::string& key,
                                      const std::string& source);
std::optional<bool> optional_bool(const nlohmann::json& object, const std::string& key,
                                  const std::string& source);
std::optional<std::string> optional_string(const nlohmann::json& object, const std::string& key,
                                           const std::string& source);

// A field that must be present (and not null).
int64_t required_int(const nlohmann::json& object, const std::string& key,
                     const std::string& source);

// An integer or a list of integers (eos_token_id is either).
std::vector<int64_t> int_or_int_list(const nlohmann::json& object, const std::string& key,
                                     const std::string& source);

}  // namespace flow2
