// flow2 chat: an interactive conversation. Each line on stdin is a user turn; the reply streams
// back. The conversation is rendered with the model's chat template every turn, and the KV
// cache keeps whatever prefix did not change, so earlier turns are not recomputed.
// Commands: /reset (forget the conversation), /quit (or end of input).
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "adapter_option.h"
#include "commands.h"
#include "flow2/chat.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/error.h"
#include "generation_flags.h"

namespace flow2::cli {
namespace {

struct ChatArgs {
  std::string model;
  std::string adapter;
  std::string system;
  int64_t context = 4096;
  GenerationFlags flags;
  std::string backend = "cpu";
};

void run_chat(const ChatArgs& args) {
  Checkpoint checkpoint = open_checkpoint(args.model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  check(tokenizer.has_value(), "{}: chat needs the model's tokenizer", args.model);
  TokenizerConfig tokenizer_config = checkpoint_tokenizer_config(checkpoint);
  ChatFormatter formatter(tokenizer_config, checkpoint.config, *tokenizer);
  auto backend = make_backend(args.backend);
  auto model = load_model(checkpoint, *backend, args.adapter);
  GenerationSession session(*model, args.context);
  GenerationOptions options =
      generation_options(args.flags, checkpoint.config, &*tokenizer, tokenizer_config);

  std::vector<ChatMessage> messages;
  if (!args.system.empty()) messages.push_back({"system", args.system});
  const size_t base = messages.size();
  std::fprintf(stderr, "flow2 chat: one message per line; /reset to start over, /quit to end\n");
  for (std::string line; std::fputs("> ", stderr), std::getline(std::cin, line);) {
    if (line == "/quit") break;
    if (line == "/reset") {
      messages.resize(base);
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    std::vector<int32_t> context = tokenizer->encode(formatter.render(messages, true), false);
    check(static_cast<int64_t>(context.size()) + options.max_new_tokens <= session.context_length(),
          "the conversation ({} tokens) no longer fits the context of {} tokens; /reset or use "
          "--ctx",
          context.size(), session.context_length());
    TextStream text(*tokenizer, args.flags.stop_strings, stdout);
    session.generate(context, options, [&](int32_t id) { return text.push(id); });
    text.finish();
    std::printf("\n");
    std::fflush(stdout);
    messages.push_back({"assistant", text.text()});
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto* command = app.add_subcommand("chat", "Talk with a model, one line per turn on stdin");
  auto args = std::make_shared<ChatArgs>();
  command->add_option("--model,-m", args->model, "Model directory or GGUF file")->required();
  add_adapter_option(*command, args->adapter);
  command->add_option("--system", args->system, "System message");
  command->add_option("--ctx", args->context, "Context length in tokens")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_generation_flags(*command, args->flags);
  command
      ->add_option("--device,--backend", args->backend,
                   "auto, cpu, cuda or cuda:N (auto: CUDA when a GPU is usable)")
      ->capture_default_str();
  command->callback([args] { run_chat(*args); });
}

}  // namespace flow2::cli
