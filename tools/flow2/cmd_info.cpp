// flow2 info MODEL: what a checkpoint holds, read from its headers without loading weights.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "flow2/model.h"

namespace flow2::cli {
namespace {

std::string rope_name(RopeType type) {
  switch (type) {
    case RopeType::None:
      return "none (learned positions)";
    case RopeType::Default:
      return "default";
    case RopeType::Linear:
      return "linear";
    case RopeType::Dynamic:
      return "dynamic";
    case RopeType::Llama3:
      return "llama3";
  }
  return "?";
}

void run_info(const std::string& path, bool as_json) {
  Checkpoint checkpoint = open_checkpoint(path);
  const ModelConfig& config = checkpoint.config;
  int64_t parameters = 0;
  std::map<std::string, int64_t> elements_by_dtype;
  for (const auto& [name, tensor] : checkpoint.weights.tensors()) {
    parameters += tensor.numel();
    elements_by_dtype[std::string(dtype_name(tensor.dtype))] += tensor.numel();
  }
  std::string dtype;
  int64_t most = -1;
  for (const auto& [name, count] : elements_by_dtype) {
    if (count > most) dtype = name, most = count;
  }
  std::vector<std::string> files;
  for (const auto& file : checkpoint.weights.files()) files.push_back(file.string());

  if (as_json) {
    nlohmann::ordered_json out;
    out["path"] = path;
    out["model_type"] = config.model_type;
    out["architecture"] = config.architecture;
    out["family"] = family_name(config.family);
    out["layers"] = config.num_layers;
    out["hidden_size"] = config.hidden_size;
    out["intermediate_size"] = config.intermediate_size;
    out["heads"] = config.num_heads;
    out["kv_heads"] = config.num_kv_heads;
    out["head_dim"] = config.head_dim;
    out["vocab_size"] = config.vocab_size;
    out["max_position_embeddings"] = config.max_position_embeddings;
    out["rope"] = rope_name(config.rope.type);
    out["parameters"] = parameters;
    out["dtype"] = dtype;
    out["parameters_by_dtype"] = elements_by_dtype;
    out["tied_embeddings"] = config.tie_word_embeddings;
    out["eos_token_ids"] = config.eos_token_ids;
    out["files"] = files;
    out["bytes_on_disk"] = checkpoint.weights.bytes_on_disk();
    fmt::print("{}\n", out.dump(2));
    return;
  }
  auto row = [](std::string_view key, const auto& value) { fmt::print("{:<24}{}\n", key, value); };
  row("path", path);
  row("architecture", fmt::format("{} ({})", config.architecture, config.model_type));
  row("layers", config.num_layers);
  row("hidden size", config.hidden_size);
  row("intermediate size", config.intermediate_size);
  row("attention heads", config.num_heads);
  row("key/value heads", config.num_kv_heads);
  row("head dim", config.head_dim);
  row("vocab size", config.vocab_size);
  row("context", config.max_position_embeddings);
  row("rope", rope_name(config.rope.type));
  row("parameters", fmt::format("{} ({:.2f} M)", parameters, parameters / 1e6));
  row("dtype", dtype);
  row("tied embeddings", config.tie_word_embeddings ? "yes" : "no");
  row("eos token ids", fmt::format("{}", fmt::join(config.eos_token_ids, ", ")));
  row("files", files.size());
  for (const auto& file : files) row("", file);
  row("bytes on disk", checkpoint.weights.bytes_on_disk());
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto* command = app.add_subcommand("info", "Describe a model checkpoint");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  command->add_option("model", *path, "Model directory")->required();
  command->add_flag("--json", *as_json, "Print JSON");
  command->callback([=] { run_info(*path, *as_json); });
}

}  // namespace flow2::cli
