#include "tokenizer/normalizers.h"

#include "tokenizer/component_spec.h"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/utf8.h"
#include "flow2/error.h"
#include "tokenizer/pattern.h"

namespace flow2 {
namespace {

using nlohmann::json;

std::string string_field(const json& spec, const char* key, const std::string& where) {
  auto it = spec.find(key);
  check(it != spec.end() && it->is_string(), "{}: missing string '{}'", where, key);
  return it->get<std::string>();
}

bool bool_field(const json& spec, const char* key, bool fallback) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// Unicode normalization forms through utf8proc.
class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  std::string normalize(std::string_view text) const override {
    utf8proc_uint8_t* result = nullptr;
    auto length = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                               static_cast<utf8proc_ssize_t>(text.size()), &result,
                               static_cast<utf8proc_option_t>(options_));
    if (length < 0) return std::string(text);  // invalid UTF-8 stays as it is
    std::string out(reinterpret_cast<char*>(result), static_cast<size_t>(length));
    std::free(result);
    return out;
  }

 private:
  int options_;
};

class Lowercase final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t position = 0; position < text.size();) {
      size_t length = 0;
      char32_t c = utf8::decode(text, position, &length);
      utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
      position += length;
    }
    return out;
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text) const override {
    size_t begin = 0, end = text.size();
    while (left_ && begin < end) {
      size_t length = 0;
      if (!utf8::is_whitespace(utf8::decode(text, begin, &length))) break;
      begin += length;
    }
    while (right_ && end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) --start;
      size_t length = 0;
      if (!utf8::is_whitespace(utf8::decode(text, start, &length))) break;
      end = start;
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string_view text) const override {
    return text.empty() ? std::string() : prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string_view text) const override {
    return pattern_.replace_all(text, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// BertNormalizer: control characters removed and whitespace made ' ', CJK characters spaced,
// optional accent stripping and lowercasing.
class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_(chinese),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}
  std::string normalize(std::string_view text) const override {
    std::string out;
    for (size_t position = 0; position < text.size();) {
      size_t length = 0;
      char32_t c = utf8::decode(text, position, &length);
      position += length;
      auto category = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      if (clean_text_) {
        bool control = c != '\t' && c != '\n' && c != '\r' &&
                       (category == UTF8PROC_CATEGORY_CC || category == UTF8PROC_CATEGORY_CF);
        if (c == 0 || c == 0xfffd || control) continue;
        if (utf8::is_whitespace(c)) c = ' ';
      }
      bool cjk = (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) ||
                 (c >= 0x20000 && c <= 0x2a6df) || (c >= 0x2a700 && c <= 0x2b73f) ||
                 (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b820 && c <= 0x2ceaf) ||
                 (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
      if (chinese_ && cjk) {
        out += ' ';
        utf8::append(out, c);
        out += ' ';
      } else {
        utf8::append(out, c);
      }
    }
    if (strip_accents_) {
      out = UnicodeForm(UTF8PROC_DECOMPOSE | UTF8PROC_STABLE).normalize(out);
      std::string stripped;
      for (size_t position = 0; position < out.size();) {
        size_t length = 0;
        char32_t c = utf8::decode(out, position, &length);
        if (utf8proc_category(static_cast<utf8proc_int32_t>(c)) != UTF8PROC_CATEGORY_MN) {
          stripped.append(out, position, length);
        }
        position += length;
      }
      out = std::move(stripped);
    }
    return lowercase_ ? Lowercase().normalize(out) : out;
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = component_type(spec, where, "normalizer");
  const std::string here = fmt::format("{} normalizer {}", where, type);
  if (type == "NFC") return std::make_unique<UnicodeForm>(UTF8PROC_COMPOSE | UTF8PROC_STABLE);
  if (type == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_DECOMPOSE | UTF8PROC_STABLE);
  if (type == "NFKC") {
    return std::make_unique<UnicodeForm>(UTF8PROC_COMPOSE | UTF8PROC_STABLE | UTF8PROC_COMPAT);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeForm>(UTF8PROC_DECOMPOSE | UTF8PROC_STABLE | UTF8PROC_COMPAT);
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip") {
    return std::make_unique<Strip>(bool_field(spec, "strip_left", true),
                                   bool_field(spec, "strip_right", true));
  }
  if (type == "Prepend") return std::make_unique<Prepend>(string_field(spec, "prepend", here));
  if (type == "Replace") {
    auto pattern = spec.find("pattern");
    check(pattern != spec.end(), "{}: missing 'pattern'", here);
    return std::make_unique<Replace>(Pattern::from_json(*pattern, here),
                                     string_field(spec, "content", here));
  }
  if (type == "Sequence") {
    return std::make_unique<Sequence>(component_list<Normalizer>(
        spec, "normalizers", here, [&](const json& step) { return make_normalizer(step, where); }));
  }
  if (type == "BertNormalizer") {
    bool lowercase = bool_field(spec, "lowercase", true);
    auto strip = spec.find("strip_accents");
    bool strip_accents =
        strip != spec.end() && strip->is_boolean() ? strip->get<bool>() : lowercase;
    return std::make_unique<BertNormalizer>(bool_field(spec, "clean_text", true),
                                            bool_field(spec, "handle_chinese_chars", true),
                                            strip_accents, lowercase);
  }
  fail("{}: unsupported normalizer type '{}'", where, type);
}

}  // namespace flow2
