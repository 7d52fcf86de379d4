// flow2 convert: a Hugging Face llama-family directory to a GGUF file, optionally quantized.
#include <fmt/format.h>

#include "commands.h"
#include "flow2/error.h"
#include "flow2/gguf_export.h"

namespace flow2::cli {
namespace {

struct ConvertArgs {
  std::string model;
  std::string out;
  std::string type = "f16";
};

DType weight_type(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  if (name == "q8_0") return DType::Q8_0;
  if (name == "q4_0") return DType::Q4_0;
  if (name == "q4_1") return DType::Q4_1;
  fail("--type '{}' is not one of f32, f16, q8_0, q4_0, q4_1", name);
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto* command = app.add_subcommand("convert", "Write a model directory as a GGUF file");
  auto args = std::make_shared<ConvertArgs>();
  command->add_option("--model,-m", args->model, "Model directory (llama, mistral)")->required();
  command->add_option("--out,-o", args->out, "The .gguf file to write")->required();
  command->add_option("--type", args->type, "Matrix weights: f32, f16, q8_0, q4_0, q4_1")
      ->capture_default_str();
  command->callback([args] {
    GgufExportOptions options;
    options.weight_type = weight_type(args->type);
    export_gguf(open_checkpoint(args->model), args->out, options);
    fmt::print("wrote {}\n", args->out);
  });
}

}  // namespace flow2::cli
