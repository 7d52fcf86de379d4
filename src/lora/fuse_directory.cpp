// Writes a fused model directory: weights, config, generation config and tokenizer files, all
// into a temporary directory that is renamed into place once complete.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <random>

#include "core/json_fields.h"
#include "flow2/atomic_file.h"
#include "flow2/error.h"
#include "flow2/lora_fuse.h"
#include "flow2/safetensors.h"
#include "lora/hf_config_json.h"

namespace flow2 {
namespace {

namespace fs = std::filesystem;

// Removes the temporary directory unless the rename took it.
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(const fs::path& target) {
    std::random_device device;
    path_ =
        target.parent_path() / fmt::format(".{}.tmp-{:08x}", target.filename().string(), device());
    fs::create_directories(path_);
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  void commit(const fs::path& target) {
    fs::rename(path_, target);  // replaces an empty directory; fails on a non-empty one
    path_.clear();
  }

 private:
  fs::path path_;
};

const char* torch_dtype_name(DType dtype) {
  return dtype == DType::F16 ? "float16" : dtype == DType::BF16 ? "bfloat16" : "float32";
}

std::string fused_config(const Checkpoint& base, DType dtype) {
  nlohmann::ordered_json config;
  if (base.gguf) {
    config = hf_config_json(base.config);
  } else {
    const fs::path path = base.path / "config.json";
    config = nlohmann::ordered_json::parse(read_json_file(path).dump());
    // The weights are dequantized: MLX and other quantization descriptions no longer apply.
    config.erase("quantization");
    config.erase("quantization_config");
  }
  config["torch_dtype"] = torch_dtype_name(dtype);
  if (config.contains("dtype")) config["dtype"] = torch_dtype_name(dtype);
  return config.dump(2);
}

constexpr const char* kTokenizerFiles[] = {"tokenizer.json",
                                           "tokenizer_config.json",
                                           "special_tokens_map.json",
                                           "tokenizer.model",
                                           "vocab.json",
                                           "merges.txt",
                                           "added_tokens.json",
                                           "chat_template.jinja",
                                           "chat_template.json"};

}  // namespace

std::vector<std::string> fuse_lora(const Checkpoint& base, const LoraAdapter& adapter,
                                   const fs::path& adapter_directory, const fs::path& out,
                                   const FuseOptions& options) {
  const DType dtype = options.dtype.value_or(default_fuse_dtype(base));
  check(!fs::exists(out) || (fs::is_directory(out) && fs::is_empty(out)),
        "{}: already exists (fuse writes a new directory)", out.string());
  std::vector<HostTensor> tensors = fused_weights(base, adapter, dtype);
  const fs::path target = fs::absolute(out);
  fs::create_directories(target.parent_path());
  TemporaryDirectory temporary(target);
  std::vector<std::string> written = {"model.safetensors", "config.json"};
  write_safetensors(temporary.path() / "model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomically(temporary.path() / "config.json", fused_config(base, dtype));
  // Generation settings and the tokenizer come from the base directory, else from the adapter's.
  std::vector<fs::path> sources;
  if (!base.gguf) sources.push_back(base.path);
  sources.push_back(adapter_directory);
  std::vector<std::string> wanted = {"generation_config.json"};
  wanted.insert(wanted.end(), std::begin(kTokenizerFiles), std::end(kTokenizerFiles));
  for (const std::string& name : wanted) {
    for (const fs::path& source : sources) {
      if (!fs::is_regular_file(source / name)) continue;
      fs::copy_file(source / name, temporary.path() / name);
      written.push_back(name);
      break;
    }
  }
  temporary.commit(target);
  return written;
}

}  // namespace flow2
