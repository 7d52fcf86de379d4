#include "flow2/tokenizer.h"

#include <simdjson.h>
#include <nlohmann/json.hpp>

#include "flow2/error.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoders.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"

namespace flow2 {

struct Tokenizer::Impl {
  std::string source;
  AddedVocabulary added;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  BpeModel model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;

  void encode_text(const std::string& text, bool at_start, std::vector<int32_t>& ids) const {
    std::vector<Piece> pieces = {{text, at_start}};
    if (pre_tokenizer) pre_tokenizer->apply(pieces);
    for (const auto& piece : pieces) model.tokenize(piece.text, ids);
  }

  // Added tokens that match raw text first; the rest is normalized, then searched for the
  // added tokens that match normalized text, then pre-tokenized and encoded. With `matched`,
  // records the text of each added token (and nothing for model tokens).
  void encode(std::string_view text, std::vector<int32_t>& ids,
              std::vector<std::optional<std::string>>* matched) const {
    // Keeps `matched` as long as `ids`, the last entry being `token`.
    auto note = [&](std::optional<std::string> token) {
      if (!matched) return;
      matched->resize(ids.size());
      matched->back() = std::move(token);
    };
    for (const auto& raw : added.split(std::string(text), false)) {
      if (raw.id) {
        ids.push_back(*raw.id);
        note(raw.text);
        continue;
      }
      std::string normalized_text = normalizer ? normalizer->normalize(raw.text) : raw.text;
      for (const auto& part : added.split(normalized_text, true)) {
        if (part.id) {
          ids.push_back(*part.id);
          note(part.text);
        } else {
          encode_text(part.text, raw.offset == 0 && part.offset == 0, ids);
          if (matched) matched->resize(ids.size());  // model tokens: no matched text
        }
      }
    }
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

namespace {

// The exact error position comes from nlohmann; simdjson only says that the JSON is malformed.
[[noreturn]] void fail_malformed(std::string_view text, const std::string& source) {
  try {
    [[maybe_unused]] auto ignored = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    fail("{}: malformed JSON: {}", source, error.what());
  }
  fail("{}: malformed JSON", source);
}

nlohmann::json to_nlohmann(simdjson::dom::element element) {
  return nlohmann::json::parse(simdjson::to_string(element));
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  simdjson::padded_string text;
  check(simdjson::padded_string::load(path.string()).get(text) == simdjson::SUCCESS,
        "{}: cannot read", path.string());
  return from_padded_json(text, path.string());
}

Tokenizer Tokenizer::from_json_text(std::string_view text, const std::string& source) {
  return from_padded_json(simdjson::padded_string(text), source);
}

Tokenizer Tokenizer::from_padded_json(const simdjson::padded_string& padded,
                                      const std::string& source) {
  // The vocabulary and merges are most of a tokenizer.json (8.8 MB for Llama 3): simdjson reads
  // them without building a tree of nodes; the small sections go through nlohmann.
  std::string_view text(padded.data(), padded.size());
  simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (parser.parse(padded).get(document) != simdjson::SUCCESS) fail_malformed(text, source);
  simdjson::dom::object root;
  check(document.get_object().get(root) == simdjson::SUCCESS, "{}: expected a JSON object", source);
  simdjson::dom::object model;
  check(root["model"].get_object().get(model) == simdjson::SUCCESS, "{}: no 'model' object",
        source);

  nlohmann::json options = nlohmann::json::object();
  std::vector<std::pair<std::string_view, int64_t>> vocab;
  std::vector<std::pair<std::string_view, std::string_view>> merges;
  for (auto field : model) {
    if (field.key == "vocab") {
      simdjson::dom::object entries;
      check(field.value.get_object().get(entries) == simdjson::SUCCESS,
            "{}: model 'vocab' must be an object", source);
      vocab.reserve(entries.size());
      for (auto entry : entries) {
        int64_t id = 0;
        check(entry.value.get_int64().get(id) == simdjson::SUCCESS,
              "{}: vocab entry '{}' has an invalid id", source, entry.key);
        vocab.emplace_back(entry.key, id);
      }
    } else if (field.key == "merges") {
      simdjson::dom::array list;
      if (field.value.is_null()) continue;
      check(field.value.get_array().get(list) == simdjson::SUCCESS,
            "{}: model 'merges' must be a list", source);
      merges.reserve(list.size());
      for (auto merge : list) {
        std::string_view pair_text;
        simdjson::dom::array pair;
        if (merge.get_string().get(pair_text) == simdjson::SUCCESS) {  // "a b"
          size_t space = pair_text.find(' ');
          check(space != std::string_view::npos &&
                    pair_text.find(' ', space + 1) == std::string_view::npos,
                "{}: merge {} '{}' is not two tokens separated by a space", source, merges.size(),
                pair_text);
          merges.emplace_back(pair_text.substr(0, space), pair_text.substr(space + 1));
        } else if (merge.get_array().get(pair) == simdjson::SUCCESS && pair.size() == 2 &&
                   pair.at(0).is_string() && pair.at(1).is_string()) {  // ["a", "b"]
          merges.emplace_back(std::string_view(pair.at(0)), std::string_view(pair.at(1)));
        } else {
          fail("{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", source, merges.size());
        }
      }
    } else {
      options[std::string(field.key)] = to_nlohmann(field.value);
    }
  }
  auto section = [&](const char* key) {
    simdjson::dom::element element;
    return root[key].get(element) == simdjson::SUCCESS ? to_nlohmann(element) : nlohmann::json();
  };
  nlohmann::json sections = nlohmann::json::object();
  for (const char* key :
       {"added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder"}) {
    sections[key] = section(key);
  }
  return from_parts(sections, options, std::move(vocab), merges, source);
}

Tokenizer Tokenizer::from_parts(
    const nlohmann::json& sections, const nlohmann::json& model_options,
    std::vector<std::pair<std::string_view, int64_t>> vocab,
    const std::vector<std::pair<std::string_view, std::string_view>>& merges,
    const std::string& source, std::span<const int32_t> merge_ranks) {
  auto member = [&](const char* key) {
    auto it = sections.find(key);
    return it == sections.end() ? nlohmann::json() : *it;
  };
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  impl->model = BpeModel::build(model_options, std::move(vocab), merges, source, merge_ranks);
  impl->added = AddedVocabulary::from_json(member("added_tokens"), source);
  impl->normalizer = make_normalizer(member("normalizer"), source);
  impl->pre_tokenizer = make_pre_tokenizer(member("pre_tokenizer"), source);
  impl->post_processor = make_post_processor(member("post_processor"), source);
  impl->decoder = make_decoder(member("decoder"), source);
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  impl_->encode(text, ids, nullptr);
  if (add_special_tokens && impl_->post_processor) {
    ids = impl_->post_processor->process(std::move(ids));
  }
  return ids;
}

Encoding Tokenizer::encode_with_tokens(std::string_view text, bool add_special_tokens) const {
  Encoding encoding;
  std::vector<std::optional<std::string>> matched;
  impl_->encode(text, encoding.ids, &matched);
  if (add_special_tokens && impl_->post_processor) {
    // The post-processor only adds ids around the sequence: find where it went.
    std::vector<int32_t> processed = impl_->post_processor->process(encoding.ids);
    size_t before = 0;
    while (before + encoding.ids.size() <= processed.size() &&
           !std::equal(encoding.ids.begin(), encoding.ids.end(), processed.begin() + before)) {
      ++before;
    }
    std::vector<std::optional<std::string>> aligned(processed.size());
    for (size_t i = 0; i < matched.size() && before + i < aligned.size(); ++i) {
      aligned[before + i] = std::move(matched[i]);
    }
    encoding.ids = std::move(processed);
    matched = std::move(aligned);
  }
  for (size_t i = 0; i < encoding.ids.size(); ++i) {
    if (matched[i]) {
      encoding.tokens.push_back(std::move(*matched[i]));
    } else {
      encoding.tokens.push_back(id_to_token(encoding.ids[i]).value_or(""));
    }
  }
  return encoding;
}

std::vector<std::string> Tokenizer::tokens(std::span<const int32_t> ids) const {
  std::vector<std::string> result;
  result.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto token = id_to_token(id)) result.push_back(std::move(*token));
  }
  return result;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> pieces;
  pieces.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    if (auto token = id_to_token(id)) pieces.push_back(std::move(*token));
  }
  if (!impl_->decoder) {
    std::string joined;
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (i > 0) joined += ' ';
      joined += pieces[i];
    }
    return joined;
  }
  impl_->decoder->decode_chain(pieces);
  std::string text;
  for (const auto& piece : pieces) text += piece;
  return text;
}

std::optional<int32_t> Tokenizer::token_to_id(const std::string& token) const {
  if (auto id = impl_->added.token_to_id(token)) return id;
  return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* token = impl_->added.find(id)) return token->content;
  if (const std::string* token = impl_->model.id_to_token(id)) return *token;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* token = impl_->added.find(id);
  return token && token->special;
}

size_t Tokenizer::vocab_size() const {
  size_t size = impl_->model.vocab_size();
  for (const auto& token : impl_->added.tokens()) {
    size = std::max(size, static_cast<size_t>(token.id) + 1);
  }
  return size;
}

}  // namespace flow2
