// flow2 fuse --model M --adapter DIR --out DIR: merges a LoRA adapter into its base model and
// writes a Hugging Face checkpoint that needs no adapter (flow2, transformers, convert to GGUF).
#include <fmt/format.h>

#include "commands.h"
#include "flow2/error.h"
#include "flow2/lora_fuse.h"
#include "flow2/lora_peft.h"

namespace flow2::cli {
namespace {

struct FuseArgs {
  std::string model;
  std::string adapter;
  std::string out;
  std::string dtype;
};

void run_fuse(const FuseArgs& args) {
  Checkpoint checkpoint = open_checkpoint(args.model);
  LoraAdapter adapter = read_peft_adapter(args.adapter, checkpoint.config);
  FuseOptions options;
  if (args.dtype == "f32") options.dtype = DType::F32;
  if (args.dtype == "f16") options.dtype = DType::F16;
  if (args.dtype == "bf16") options.dtype = DType::BF16;
  std::vector<std::string> files = fuse_lora(checkpoint, adapter, args.adapter, args.out, options);
  const DType dtype = options.dtype.value_or(default_fuse_dtype(checkpoint));
  fmt::print("fused {} LoRA modules (scaling {}) into {} tensors, {}\n", adapter.modules.size(),
             adapter.config.scaling(), checkpoint.weights.tensors().size(), dtype_name(dtype));
  fmt::print("wrote {}: {}\n", args.out, fmt::join(files, ", "));
  if (std::find(files.begin(), files.end(), "tokenizer.json") == files.end()) {
    fmt::print(stderr, "note: no tokenizer.json in the base or adapter directory to copy\n");
  }
}

}  // namespace

void add_fuse_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "fuse", "Merge a LoRA adapter into its base model (a Hugging Face checkpoint)");
  auto args = std::make_shared<FuseArgs>();
  command->add_option("--model,-m", args->model, "Base model directory or GGUF file")->required();
  command->add_option("--adapter", args->adapter, "PEFT LoRA adapter directory")->required();
  command->add_option("--out,-o", args->out, "Directory to create")->required();
  command
      ->add_option("--dtype", args->dtype,
                   "Weights written as f32, f16 or bf16 (default: the base's 16/32-bit type; "
                   "f32 for quantized bases)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  command->callback([args] { run_fuse(*args); });
}

}  // namespace flow2::cli
