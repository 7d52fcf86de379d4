// flow2 generate: continue a prompt given as text, a file or token ids; --chat wraps it in the
// model's chat template. Text streams to the terminal as it is decoded.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "adapter_option.h"
#include "commands.h"
#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/error.h"
#include "generation_flags.h"
#include "prompt_input.h"

namespace flow2::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string adapter;
  PromptInput prompt;
  bool chat = false;
  std::string system;
  GenerationFlags flags;
  bool as_json = false;
  std::string backend = "cpu";
};

double per_second(size_t count, double seconds) {
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
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
  auto model = load_model(checkpoint, *backend, args.adapter);
  double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  GenerationOptions options = generation_options(
      args.flags, checkpoint.config, tokenizer ? &*tokenizer : nullptr, tokenizer_config);
  std::optional<TextStream> text;
  if (tokenizer) text.emplace(*tokenizer, args.flags.stop_strings, args.as_json ? nullptr : stdout);
  check(tokenizer || args.flags.stop_strings.empty(), "--stop needs the model's tokenizer");
  bool first_id = true;
  TokenCallback on_token = [&](int32_t id) {
    if (text) return text->push(id);
    if (!args.as_json) std::printf(first_id ? "%d" : " %d", id), std::fflush(stdout);
    first_id = false;
    return true;
  };
  GenerationResult result = generate(*model, prompt, options, on_token);
  if (text) text->finish();
  // Decode speed counts the tokens produced by decode steps: all but the prefill's one.
  size_t decoded = result.ids.empty() ? 0 : result.ids.size() - 1;
  double prefill_rate = per_second(prompt.size(), result.prefill_seconds);
  double decode_rate = per_second(decoded, result.decode_seconds);
  if (args.as_json) {
    nlohmann::ordered_json out;
    if (text) out["text"] = text->text();
    out["ids"] = result.ids;
    out["prompt_tokens"] = prompt.size();
    out["generated_tokens"] = result.ids.size();
    out["stop_reason"] = result.stop_reason == "stopped" ? "stop_string" : result.stop_reason;
    out["load_s"] = load_seconds;
    out["prefill_tok_s"] = prefill_rate;
    out["decode_tok_s"] = decode_rate;
    out["ttft_s"] = result.prefill_seconds;
    out["peak_rss_bytes"] = peak_rss_bytes();
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
  auto* command = app.add_subcommand("generate", "Generate text from a prompt");
  auto args = std::make_shared<GenerateArgs>();
  command->add_option("--model,-m", args->model, "Model directory or GGUF file")->required();
  add_adapter_option(*command, args->adapter);
  add_prompt_options(*command, args->prompt, "prompt-ids", "prompt");
  command->add_flag("--chat", args->chat,
                    "Wrap the prompt as a user turn in the model's chat template");
  command->add_option("--system", args->system, "System message (with --chat)");
  add_generation_flags(*command, args->flags);
  command
      ->add_option("--device,--backend", args->backend,
                   "auto, cpu, cuda or cuda:N (auto: CUDA when a GPU is usable)")
      ->capture_default_str();
  command->add_flag("--json", args->as_json, "Print one JSON object");
  command->callback([args] { run_generate(*args); });
}

}  // namespace flow2::cli
