// flow2 perplexity: mean negative log-likelihood of a text or token sequence under a model.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "adapter_option.h"
#include "commands.h"
#include "flow2/checkpoint_tokenizer.h"
#include "flow2/generate.h"
#include "prompt_input.h"

namespace flow2::cli {
namespace {

struct PerplexityArgs {
  std::string model;
  std::string adapter;
  PromptInput input;
  int64_t context = 0;
  bool as_json = false;
  std::string backend = "cpu";
};

void run_perplexity(const PerplexityArgs& args) {
  Checkpoint checkpoint = open_checkpoint(args.model);
  std::optional<Tokenizer> tokenizer = checkpoint_tokenizer(checkpoint);
  std::vector<int32_t> ids = args.input.token_ids(tokenizer ? &*tokenizer : nullptr, true);
  auto backend = make_backend(args.backend);
  auto model = load_model(checkpoint, *backend, args.adapter);
  PerplexityResult result = perplexity(*model, ids, args.context);
  if (args.as_json) {
    nlohmann::ordered_json out;
    out["tokens"] = result.tokens;
    out["nll"] = result.nll;
    out["perplexity"] = result.perplexity;
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("tokens {}  nll {:.6f}  perplexity {:.4f}\n", result.tokens, result.nll,
               result.perplexity);
  }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto* command = app.add_subcommand("perplexity", "Perplexity of a token sequence");
  auto args = std::make_shared<PerplexityArgs>();
  command->add_option("--model,-m", args->model, "Model directory")->required();
  add_adapter_option(*command, args->adapter);
  add_prompt_options(*command, args->input, "ids", "text");
  command
      ->add_option("--ctx", args->context,
                   "Score in windows of this many tokens, advancing by half (0: one window)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--device,--backend", args->backend,
                   "auto, cpu, cuda or cuda:N (auto: CUDA when a GPU is usable)")
      ->capture_default_str();
  command->add_flag("--json", args->as_json, "Print one JSON object");
  command->callback([args] { run_perplexity(*args); });
}

}  // namespace flow2::cli
