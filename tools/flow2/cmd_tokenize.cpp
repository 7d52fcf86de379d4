// flow2 tokenize: text to ids and tokens with a model's tokenizer.json, or ids back to text.
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/error.h"
#include "flow2/tokenizer.h"
#include "flow2/tokenizer_config.h"

namespace flow2::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string text;
  std::string input_jsonl;
  std::string decode_ids;
  bool special = false;
  bool as_json = false;
};

nlohmann::json encoding_json(const Encoding& encoding) {
  return {{"ids", encoding.ids}, {"tokens", encoding.tokens}};
}

void run_tokenize(const TokenizeArgs& args) {
  Tokenizer tokenizer = load_tokenizer(args.model);
  if (!args.decode_ids.empty()) {
    std::vector<int32_t> ids = parse_id_list(args.decode_ids, "--decode");
    std::string text = tokenizer.decode(ids, !args.special);
    if (args.as_json) {
      fmt::print("{}\n", nlohmann::json{{"text", text}}.dump());
    } else {
      fmt::print("{}\n", text);
    }
    return;
  }
  if (!args.input_jsonl.empty()) {
    std::ifstream stream(args.input_jsonl);
    check(stream.good(), "{}: cannot open", args.input_jsonl);
    size_t number = 0;
    for (std::string line; std::getline(stream, line);) {
      ++number;
      if (line.empty()) continue;
      nlohmann::json value;
      try {
        value = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& error) {
        fail("{}:{}: not valid JSON: {}", args.input_jsonl, number, error.what());
      }
      check(value.is_string(), "{}:{}: expected a JSON string", args.input_jsonl, number);
      fmt::print("{}\n",
                 encoding_json(tokenizer.encode_with_tokens(value.get<std::string>(), args.special))
                     .dump());
    }
    return;
  }
  Encoding encoding = tokenizer.encode_with_tokens(args.text, args.special);
  if (args.as_json) {
    fmt::print("{}\n", encoding_json(encoding).dump());
    return;
  }
  fmt::print("{}\n", fmt::join(encoding.ids, " "));
  std::vector<std::string> quoted;
  for (const auto& token : encoding.tokens) quoted.push_back(nlohmann::json(token).dump());
  fmt::print("{}\n", fmt::join(quoted, " "));
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto* command = app.add_subcommand("tokenize", "Turn text into token ids (or ids into text)");
  auto args = std::make_shared<TokenizeArgs>();
  command->add_option("--model,-m", args->model, "Model directory or tokenizer.json")->required();
  auto* text = command->add_option("--text", args->text, "Text to encode");
  auto* jsonl = command->add_option("--input-jsonl", args->input_jsonl,
                                    "File with one JSON string per line; prints one JSON object "
                                    "{\"ids\", \"tokens\"} per line");
  auto* decode = command->add_option("--decode", args->decode_ids, "Ids to decode, e.g. 1,2,3");
  text->excludes(jsonl)->excludes(decode);
  jsonl->excludes(decode);
  command->add_flag("--special", args->special,
                    "Add the post-processor's special tokens (with --decode: keep special tokens)");
  command->add_flag("--json", args->as_json, "Print JSON");
  command->callback([args, text, jsonl, decode] {
    check(text->count() + jsonl->count() + decode->count() == 1,
          "tokenize needs one of --text, --input-jsonl or --decode");
    run_tokenize(*args);
  });
}

}  // namespace flow2::cli
