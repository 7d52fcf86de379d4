#include "chat/arguments.h"

#include "chat/runtime_error.h"

namespace flow2::chat {

Arguments::Arguments(std::string what, CallArgs args,
                     std::initializer_list<std::string_view> params)
    : what_(std::move(what)), params_(params), values_(params.size()) {
  if (args.positional.size() > params_.size()) {
    runtime_fail("{} takes at most {} argument{} ({} given)", what_, params_.size(),
                 params_.size() == 1 ? "" : "s", args.positional.size());
  }
  for (size_t i = 0; i < args.positional.size(); ++i) values_[i] = std::move(args.positional[i]);
  for (auto& [key, value] : args.keywords) {
    size_t index = 0;
    while (index < params_.size() && params_[index] != key) ++index;
    if (index == params_.size())
      runtime_fail("{} got an unexpected keyword argument '{}'", what_, key);
    if (values_[index]) runtime_fail("{} got multiple values for argument '{}'", what_, key);
    values_[index] = std::move(value);
  }
}

const Value& Arguments::get(size_t index) const {
  static const Value kMissing;
  return values_[index] ? *values_[index] : kMissing;
}

Value Arguments::get_or(size_t index, Value fallback) const {
  return values_[index] ? *values_[index] : fallback;
}

int64_t require_int(const Value& value, std::string_view what) {
  if (!value.is_integral()) {
    runtime_fail("{} must be an integer, not '{}'", what, type_name(value));
  }
  return value.as_integral();
}

int64_t Arguments::get_int(size_t index, int64_t fallback) const {
  if (!values_[index]) return fallback;
  return require_int(*values_[index], fmt::format("argument '{}' of {}", params_[index], what_));
}

std::optional<std::string> Arguments::get_string(size_t index, bool none_is_default) const {
  if (!values_[index] || (none_is_default && values_[index]->is_none())) return std::nullopt;
  if (!values_[index]->is_string()) {
    runtime_fail("argument '{}' of {} must be a string, not '{}'", params_[index], what_,
                 type_name(*values_[index]));
  }
  return values_[index]->as_string();
}

bool Arguments::get_flag(size_t index, bool fallback) const {
  return values_[index] ? truthy(*values_[index]) : fallback;
}

}  // namespace flow2::chat
