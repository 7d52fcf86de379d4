// flow2 generate: greedy or sampled continuation of a prompt given as text or token ids.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/error.h"
#include "flow2/generate.h"
#include "prompt_input.h"

namespace flow2::cli {
namespace {

struct GenerateArgs {
  std::string model;
  PromptInput prompt;
  bool chat = false;
  std::string system;
  int64_t max_tokens = 64;
  float temperature = 0.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  bool as_json = false;
  std::string backend = "cpu";
};

double tokens_per_second(size_t tokens, double seconds) {
  return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
}

void run_generate(const GenerateArgs& args) {
  auto start = std::chrono::steady_clock::now();
  Checkpoint checkpoint = open_checkpoint(args.model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  TokenizerConfig tokenizer_config = checkpoint_tokenizer_config(checkpoint);
  std::vector<int32_t> prompt;
  if (args.chat) {
    // The template writes every special token itself, as apply_chat_template(tokenize=True).
    check(tokenizer && args.prompt.has_text(), "--chat needs a text prompt and a tokenizer");
    std::vector<ChatMessage> messages;
    if (!args.system.empty()) messages.push_back({"system", args.system});
    messages.push_back({"user", args.prompt.read_text()});
    ChatFormatter formatter(tokenizer_config, checkpoint.config, *tokenizer);
    prompt = tokenizer->encode(formatter.render(messages, true), false);
  } else {
    // Plain text gets the tokenizer's special tokens (a BOS id, say), as transformers does.
    prompt = args.prompt.token_ids(tokenizer ? &*tokenizer : nullptr, true);
  }
  auto backend = make_backend(args.backend);
  auto model = Model::load(checkpoint, *backend);
  double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  GenerationOptions options;
  options.max_new_tokens = args.max_tokens;
  options.temperature = args.temperature;
  options.seed = args.seed;
  if (!args.ignore_eos) {
    options.stop_ids = model->config().eos_token_ids;
    // The tokenizer's end-of-turn token (<|eot_id|>, <|im_end|>) ends a reply too.
    if (tokenizer && !tokenizer_config.eos_token.empty()) {
      if (auto id = tokenizer->token_to_id(tokenizer_config.eos_token)) {
        options.stop_ids.push_back(*id);
      }
    }
  }

  // Text streams to the terminal as tokens arrive (ids when the model has no tokenizer).
  std::function<void(int32_t)> stream;
  std::optional<StreamingDecoder> detokenizer;
  if (tokenizer) detokenizer.emplace(*tokenizer);
  if (!args.as_json) {
    stream = [&, first = true](int32_t id) mutable {
      if (detokenizer) {
        std::fputs(detokenizer->push(id).c_str(), stdout);
      } else {
        std::printf(first ? "%d" : " %d", id);
      }
      std::fflush(stdout);
      first = false;
    };
  }
  GenerationResult result = generate(*model, prompt, options, stream);
  if (detokenizer && !args.as_json) std::fputs(detokenizer->finish().c_str(), stdout);
  // Decode speed counts the tokens produced by decode steps: all but the prefill's one.
  size_t decoded = result.ids.empty() ? 0 : result.ids.size() - 1;
  double prefill_rate = tokens_per_second(prompt.size(), result.prefill_seconds);
  double decode_rate = tokens_per_second(decoded, result.decode_seconds);
  if (args.as_json) {
    nlohmann::ordered_json out;
    if (tokenizer) out["text"] = tokenizer->decode(result.ids, true);
    out["ids"] = result.ids;
    out["prompt_tokens"] = prompt.size();
    out["generated_tokens"] = result.ids.size();
    out["stop_reason"] = result.stop_reason;
    out["load_s"] = load_seconds;
    out["prefill_tok_s"] = prefill_rate;
    out["decode_tok_s"] = decode_rate;
    fmt::print("{}\n", out.dump());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr,
                 "load %.3f s, prefill %zu tokens at %.1f tok/s, decode %zu at %.1f tok/s\n",
                 load_seconds, prompt.size(), prefill_rate, decoded, decode_rate);
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* command = app.add_subcommand("generate", "Generate tokens from a prompt");
  auto args = std::make_shared<GenerateArgs>();
  command->add_option("--model,-m", args->model, "Model directory")->required();
  add_prompt_options(*command, args->prompt, "prompt-ids", "prompt");
  command->add_flag("--chat", args->chat,
                    "Wrap the prompt as a user turn in the model's chat template");
  command->add_option("--system", args->system, "System message (with --chat)");
  command->add_option("--max-tokens,-n", args->max_tokens, "New tokens at most")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command->add_option("--temp", args->temperature, "Sampling temperature; 0 is greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command->add_option("--seed", args->seed, "Random seed for sampling")->capture_default_str();
  command->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at end-of-sequence ids");
  command->add_option("--backend", args->backend, "cpu")->capture_default_str();
  command->add_flag("--json", args->as_json, "Print one JSON object");
  command->callback([args] { run_generate(*args); });
}

}  // namespace flow2::cli
