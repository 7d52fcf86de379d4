#include "tokenizer/decoders.h"

#include "tokenizer/component_spec.h"

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "flow2/error.h"
#include "tokenizer/pattern.h"

namespace flow2 {
namespace {

using nlohmann::json;

// Maps byte-level characters back to bytes; the result is one string, made valid UTF-8.
class ByteLevel final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      for (size_t position = 0; position < token.size();) {
        size_t length = 0;
        char32_t c = utf8::decode(token, position, &length);
        int byte = utf8::unicode_to_byte(c);
        if (byte >= 0) {
          bytes += static_cast<char>(byte);
        } else {
          bytes.append(token, position, length);  // not a byte-level character: kept as is
        }
        position += length;
      }
    }
    tokens.assign(1, utf8::make_valid(bytes));
  }
};

class Metaspace final : public Decoder {
 public:
  Metaspace(std::string replacement, bool strip_first_space)
      : replacement_(std::move(replacement)), strip_first_space_(strip_first_space) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    // As the reference: in the first token every replacement character is dropped (it stood
    // for the prepended space); elsewhere each one becomes a space.
    for (size_t i = 0; i < tokens.size(); ++i) {
      bool drop = i == 0 && strip_first_space_;
      tokens[i] = Pattern::literal(replacement_).replace_all(tokens[i], drop ? "" : " ");
    }
  }

 private:
  std::string replacement_;
  bool strip_first_space_;
};

// "<0xNN>" tokens become bytes; runs of them that are not valid UTF-8 become U+FFFD per byte.
class ByteFallback final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (utf8::is_valid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending_count; ++i) out.push_back("\xef\xbf\xbd");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& token : tokens) {
      int byte = parse_byte(token);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int parse_byte(const std::string& token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
    auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int high = hex(token[3]), low = hex(token[4]);
    return high < 0 || low < 0 ? -1 : high * 16 + low;
  }
};

class Fuse final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& token : tokens) joined += token;
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` from every token.
class Strip final : public Decoder {
 public:
  Strip(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0 &&
                         begin + content_.size() <= end;
           ++i) {
        begin += content_.size();
      }
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class Replace final : public Decoder {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& token : tokens) token = pattern_.replace_all(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// Undoes the spaces that word-level tokenization puts before punctuation and contractions.
std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kReplacements[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kReplacements) text = Pattern::literal(from).replace_all(text, to);
  return text;
}

// WordPiece: "##" continues the previous word; other tokens start a new one with a space.
class WordPiece final : public Decoder {
 public:
  WordPiece(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) {
        if (tokens[i].starts_with(prefix_)) {
          tokens[i].erase(0, prefix_.size());
        } else {
          tokens[i] = utf8::prepend(" ", tokens[i]);
        }
      }
      if (cleanup_) tokens[i] = clean_up_tokenization(std::move(tokens[i]));
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

// BPEDecoder: the end-of-word suffix becomes a space (none after the last token).
class SuffixDecoder final : public Decoder {
 public:
  explicit SuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string replacement = i + 1 == tokens.size() ? "" : " ";
      tokens[i] = Pattern::literal(suffix_).replace_all(tokens[i], replacement);
    }
  }

 private:
  std::string suffix_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

std::string string_or(const json& spec, const char* key, std::string fallback) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : fallback;
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = component_type(spec, where, "decoder");
  const std::string here = fmt::format("{} decoder {}", where, type);
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Metaspace") {
    std::string scheme = string_or(spec, "prepend_scheme", "");
    bool strip = scheme.empty() ? !spec.contains("add_prefix_space") ||
                                      (spec["add_prefix_space"].is_boolean() &&
                                       spec["add_prefix_space"].get<bool>())
                                : scheme != "never";
    return std::make_unique<Metaspace>(string_or(spec, "replacement", "\u2581"), strip);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    auto count = [&](const char* key) {
      auto it = spec.find(key);
      return it != spec.end() && it->is_number_unsigned() ? it->get<size_t>() : size_t{0};
    };
    return std::make_unique<Strip>(string_or(spec, "content", " "), count("start"), count("stop"));
  }
  if (type == "Replace") {
    auto pattern = spec.find("pattern");
    check(pattern != spec.end(), "{}: missing 'pattern'", here);
    return std::make_unique<Replace>(Pattern::from_json(*pattern, here),
                                     string_or(spec, "content", ""));
  }
  if (type == "WordPiece") {
    auto cleanup = spec.find("cleanup");
    return std::make_unique<WordPiece>(
        string_or(spec, "prefix", "##"),
        cleanup == spec.end() || !cleanup->is_boolean() || cleanup->get<bool>());
  }
  if (type == "BPEDecoder")
    return std::make_unique<SuffixDecoder>(string_or(spec, "suffix", "</w>"));
  if (type == "Sequence") {
    return std::make_unique<Sequence>(component_list<Decoder>(
        spec, "decoders", here, [&](const json& step) { return make_decoder(step, where); }));
  }
  fail("{}: unsupported decoder type '{}'", where, type);
}

}  // namespace flow2
