// flow2 convert: a Hugging Face llama-family or GPT-2 directory to a GGUF file, optionally
// quantized.
#include <fmt/format.h>

#include <map>
#include <string>

#include "commands.h"
#include "flow2/error.h"
#include "flow2/gguf.h"
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
  if (name == "q4_k") return DType::Q4_K;
  if (name == "q5_k") return DType::Q5_K;
  if (name == "q6_k") return DType::Q6_K;
  fail("--type '{}' is not one of f32, f16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k", name);
}

// "12 Q4_K, 3 Q4_1, 7 F32": how many tensors the written file holds of each type.
std::string type_counts(const std::filesystem::path& path) {
  std::map<std::string, int> counts;
  const GgufFile file = GgufFile::open(path);
  for (const auto& tensor : file.tensors()) ++counts[std::string(dtype_name(tensor.dtype))];
  std::string text;
  for (const auto& [name, count] : counts) {
    text += fmt::format("{}{} {}", text.empty() ? "" : ", ", count, name);
  }
  return text;
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto* command = app.add_subcommand("convert", "Write a model directory as a GGUF file");
  auto args = std::make_shared<ConvertArgs>();
  command->add_option("--model,-m", args->model, "Model directory (llama, mistral, gpt2)")
      ->required();
  command->add_option("--out,-o", args->out, "The .gguf file to write")->required();
  command
      ->add_option("--type", args->type,
                   "Matrix weights: f32, f16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k. Norms stay f32; "
                   "a matrix whose rows are not whole blocks falls back: q4_k to q4_1, q5_k and "
                   "q6_k to q8_0 (rows of 32n; llama.cpp picks q5_0/q5_1/q8_0), else f16; "
                   "q8_0, q4_0, q4_1 to f32")
      ->capture_default_str();
  command->callback([args] {
    GgufExportOptions options;
    options.weight_type = weight_type(args->type);
    export_gguf(open_checkpoint(args->model), args->out, options);
    fmt::print("wrote {} ({} tensors)\n", args->out, type_counts(args->out));
  });
}

}  // namespace flow2::cli
