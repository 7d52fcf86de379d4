#include "tokenizer/post_processors.h"

#include "tokenizer/component_spec.h"

#include <nlohmann/json.hpp>

#include "flow2/error.h"

namespace flow2 {
namespace {

using nlohmann::json;

class Unchanged final : public PostProcessor {
 public:
  std::vector<int32_t> process(std::vector<int32_t> ids) const override { return ids; }
};

// Wraps the sequence in fixed ids before and after (Template, Bert, Roberta processing).
class Surround final : public PostProcessor {
 public:
  Surround(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    std::vector<int32_t> out = before_;
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after_.begin(), after_.end());
    return out;
  }

 private:
  std::vector<int32_t> before_, after_;
};

class Sequence final : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    for (const auto& step : steps_) ids = step->process(std::move(ids));
    return ids;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

std::unique_ptr<PostProcessor> make_template(const json& spec, const std::string& where) {
  auto single = spec.find("single");
  check(single != spec.end() && single->is_array(), "{}: missing 'single' template", where);
  auto special = spec.find("special_tokens");
  auto ids_of = [&](const std::string& name) {
    check(special != spec.end() && special->contains(name),
          "{}: template uses special token '{}' that 'special_tokens' does not define", where,
          name);
    const json& entry = (*special)[name];
    check(entry.contains("ids") && entry["ids"].is_array(), "{}: special token '{}' has no ids",
          where, name);
    return entry["ids"].get<std::vector<int32_t>>();
  };
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const auto& item : *single) {
    if (item.contains("Sequence")) {
      check(!seen_sequence, "{}: the single template holds the sequence twice", where);
      seen_sequence = true;
    } else if (item.contains("SpecialToken")) {
      const json& token = item["SpecialToken"];
      check(token.contains("id") && token["id"].is_string(), "{}: SpecialToken without an id",
            where);
      auto ids = ids_of(token["id"].get<std::string>());
      auto& target = seen_sequence ? after : before;
      target.insert(target.end(), ids.begin(), ids.end());
    } else {
      fail("{}: unknown template item {}", where, item.dump());
    }
  }
  check(seen_sequence, "{}: the single template has no sequence", where);
  return std::make_unique<Surround>(std::move(before), std::move(after));
}

// Bert/Roberta store [token, id] pairs under "cls" and "sep".
int32_t pair_id(const json& spec, const char* key, const std::string& where) {
  auto it = spec.find(key);
  check(it != spec.end() && it->is_array() && it->size() == 2 && (*it)[1].is_number_integer(),
        "{}: '{}' must be [token, id]", where, key);
  return (*it)[1].get<int32_t>();
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = component_type(spec, where, "post_processor");
  const std::string here = fmt::format("{} post_processor {}", where, type);
  if (type == "ByteLevel") return std::make_unique<Unchanged>();
  if (type == "TemplateProcessing") return make_template(spec, here);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    return std::make_unique<Surround>(std::vector<int32_t>{pair_id(spec, "cls", here)},
                                      std::vector<int32_t>{pair_id(spec, "sep", here)});
  }
  if (type == "Sequence") {
    return std::make_unique<Sequence>(component_list<PostProcessor>(
        spec, "processors", here,
        [&](const json& step) { return make_post_processor(step, where); }));
  }
  fail("{}: unsupported post_processor type '{}'", where, type);
}

}  // namespace flow2
