// A GGUF file as a checkpoint: model config from the metadata, tensors renamed to Hugging Face
// names. llama.cpp's converter reorders the rows of the Llama q/k projections for its
// interleaved RoPE; they are put back in the rotate-half order that flow2's RoPE (and
// transformers') expects. GPT-2 tensors keep their GGUF names: their [out, in] layout is not
// that of Hugging Face's Conv1D weights, and bind_gpt2_weights reads them as they are.
#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <regex>

#include "flow2/error.h"
#include "flow2/gguf.h"
#include "flow2/model.h"

namespace flow2 {
namespace {

class Metadata {
 public:
  Metadata(const GgufFile& file, std::string architecture)
      : file_(file), architecture_(std::move(architecture)) {}
  const GgufValue* find(const std::string& key) const {
    return file_.find(architecture_ + "." + key);
  }
  uint64_t required_uint(const std::string& key) const {
    const GgufValue* value = find(key);
    check(value != nullptr, "{}: missing GGUF key '{}.{}'", file_.source(), architecture_, key);
    return value->as_uint(architecture_ + "." + key);
  }
  std::optional<uint64_t> optional_uint(const std::string& key) const {
    const GgufValue* value = find(key);
    return value ? std::optional(value->as_uint(architecture_ + "." + key)) : std::nullopt;
  }
  std::optional<double> optional_float(const std::string& key) const {
    const GgufValue* value = find(key);
    return value ? std::optional(value->as_float(architecture_ + "." + key)) : std::nullopt;
  }

 private:
  const GgufFile& file_;
  std::string architecture_;
};

std::optional<int64_t> token_id(const GgufFile& file, const char* key) {
  const GgufValue* value = file.find(key);
  return value ? std::optional(static_cast<int64_t>(value->as_uint(key))) : std::nullopt;
}

ModelConfig llama_family_config(const GgufFile& file, const std::string& architecture) {
  Metadata meta(file, architecture);
  ModelConfig config;
  config.model_type = architecture == "qwen2" ? "qwen2" : "llama";
  config.architecture = architecture == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  config.family = ModelFamily::Llama;
  config.num_layers = static_cast<int64_t>(meta.required_uint("block_count"));
  config.hidden_size = static_cast<int64_t>(meta.required_uint("embedding_length"));
  config.intermediate_size = static_cast<int64_t>(meta.required_uint("feed_forward_length"));
  config.num_heads = static_cast<int64_t>(meta.required_uint("attention.head_count"));
  check(config.num_heads > 0, "{}: attention.head_count is 0", file.source());
  config.num_kv_heads = static_cast<int64_t>(
      meta.optional_uint("attention.head_count_kv").value_or(config.num_heads));
  config.head_dim = static_cast<int64_t>(
      meta.optional_uint("attention.key_length").value_or(config.hidden_size / config.num_heads));
  config.max_position_embeddings =
      static_cast<int64_t>(meta.optional_uint("context_length").value_or(2048));
  config.norm_eps = meta.optional_float("attention.layer_norm_rms_epsilon").value_or(1e-5);
  config.rope.type = RopeType::Default;
  config.rope.theta = meta.optional_float("rope.freq_base").value_or(10000.0);
  if (const GgufValue* scaling = meta.find("rope.scaling.type")) {
    const std::string type = scaling->as_string(architecture + ".rope.scaling.type");
    if (type == "linear") {
      config.rope.type = RopeType::Linear;
      config.rope.factor = meta.optional_float("rope.scaling.factor").value_or(1.0);
    } else {
      check(type == "none", "{}: rope scaling '{}' is not supported", file.source(), type);
    }
  }
  if (auto window = meta.optional_uint("attention.sliding_window")) {
    config.sliding_window = static_cast<int64_t>(*window);
  }
  return config;
}

// llama.cpp's gpt2 graph: LayerNorm, learned positions, fused qkv, gelu (tanh approximation).
ModelConfig gpt2_config(const GgufFile& file) {
  Metadata meta(file, "gpt2");
  ModelConfig config;
  config.model_type = "gpt2";
  config.architecture = "GPT2LMHeadModel";
  config.family = ModelFamily::Gpt2;
  config.num_layers = static_cast<int64_t>(meta.required_uint("block_count"));
  config.hidden_size = static_cast<int64_t>(meta.required_uint("embedding_length"));
  config.intermediate_size = static_cast<int64_t>(
      meta.optional_uint("feed_forward_length").value_or(4 * config.hidden_size));
  config.num_heads = static_cast<int64_t>(meta.required_uint("attention.head_count"));
  check(config.num_heads > 0 && config.hidden_size % config.num_heads == 0,
        "{}: gpt2.embedding_length {} does not split into {} heads", file.source(),
        config.hidden_size, config.num_heads);
  config.num_kv_heads = config.num_heads;
  config.head_dim = config.hidden_size / config.num_heads;
  config.max_position_embeddings = static_cast<int64_t>(meta.required_uint("context_length"));
  config.norm_eps = meta.optional_float("attention.layer_norm_epsilon").value_or(1e-5);
  config.activation = Activation::GeluTanh;
  config.qkv_bias = config.o_bias = config.mlp_bias = true;
  config.rope.type = RopeType::None;
  return config;
}

bool is_gpt2_name(const std::string& name) {
  static const std::regex kName(
      R"((token_embd|position_embd|output)\.weight|output_norm\.(weight|bias)|)"
      R"(blk\.\d+\.(attn_norm|attn_qkv|attn_output|ffn_norm|ffn_up|ffn_down)\.(weight|bias))");
  return std::regex_match(name, kName);
}

// Puts the rows of a q or k projection (`heads` heads of `head_dim` rows) back from llama.cpp's
// interleaved order (pairs 2i, 2i+1) into rotate-half order (i, i + head_dim / 2).
HostTensor unpermute_rows(const HostTensor& tensor, int64_t heads, const std::string& source) {
  check(tensor.shape.size() >= 1 && tensor.shape[0] % heads == 0 &&
            (tensor.shape[0] / heads) % 2 == 0,
        "{}: tensor '{}' rows do not split into {} heads", source, tensor.name, heads);
  const int64_t rows = tensor.shape[0];
  const int64_t head_dim = rows / heads;
  const size_t row_bytes = tensor.bytes.size() / static_cast<size_t>(rows);
  // Not zero-filled, and copied by all threads: an 8B model's q and k are 377 MB at 4 bits, copied
  // at every open of its GGUF.
  const std::shared_ptr<std::byte[]> storage(new std::byte[tensor.bytes.size()]);
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t from = h * head_dim + 2 * i + j;
        const int64_t to = h * head_dim + j * (head_dim / 2) + i;
        std::memcpy(storage.get() + to * row_bytes, tensor.bytes.data() + from * row_bytes,
                    row_bytes);
      }
    }
  }
  HostTensor result = tensor;
  result.bytes = std::span<const std::byte>(storage.get(), tensor.bytes.size());
  result.owner = storage;
  return result;
}

// GGUF tensor name -> Hugging Face name for the llama family.
std::optional<std::string> llama_name(const std::string& name) {
  static const std::pair<const char*, const char*> kGlobal[] = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  for (const auto& [from, to] : kGlobal) {
    if (name == from) return std::string(to);
  }
  static const std::regex kBlock(R"(blk\.(\d+)\.(\w+)\.(weight|bias))");
  static const std::pair<const char*, const char*> kLayer[] = {
      {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  std::smatch match;
  if (!std::regex_match(name, match, kBlock)) return std::nullopt;
  for (const auto& [from, to] : kLayer) {
    if (match[2] == from) {
      return fmt::format("model.layers.{}.{}.{}", match[1].str(), to, match[3].str());
    }
  }
  return std::nullopt;
}

}  // namespace

Checkpoint open_gguf_checkpoint(const std::filesystem::path& path) {
  auto file = std::make_shared<const GgufFile>(GgufFile::open(path));
  const std::string& source = file->source();
  const GgufValue* architecture_value = file->find("general.architecture");
  check(architecture_value != nullptr, "{}: missing GGUF key 'general.architecture'", source);
  const std::string architecture = architecture_value->as_string("general.architecture");
  check(architecture == "llama" || architecture == "qwen2" || architecture == "gpt2",
        "{}: GGUF architecture '{}' is not supported (llama, qwen2, gpt2)", source, architecture);
  const bool gpt2 = architecture == "gpt2";
  ModelConfig config = gpt2 ? gpt2_config(*file) : llama_family_config(*file, architecture);

  WeightStore store(source);
  store.add_file(path, file->file_size());
  bool has_output = false, has_qkv_bias = false;
  // llama.cpp permutes q/k rows for the llama architecture only (Qwen2 keeps rotate-half).
  const bool permuted = architecture == "llama";
  for (const auto& tensor : file->tensors()) {
    if (gpt2) {
      check(is_gpt2_name(tensor.name), "{}: unexpected tensor '{}' for architecture gpt2", source,
            tensor.name);
      has_output |= tensor.name == "output.weight";
      store.add(tensor, path.string());
      continue;
    }
    if (tensor.name == "rope_freqs.weight") {
      config.rope.frequency_factors = tensor.to_f32();
      continue;
    }
    auto name = llama_name(tensor.name);
    check(name.has_value(), "{}: unexpected tensor '{}' for architecture {}", source, tensor.name,
          architecture);
    HostTensor renamed = tensor;
    if (permuted && tensor.name.find(".attn_q.") != std::string::npos) {
      renamed = unpermute_rows(tensor, config.num_heads, source);
    } else if (permuted && tensor.name.find(".attn_k.") != std::string::npos) {
      renamed = unpermute_rows(tensor, config.num_kv_heads, source);
    }
    renamed.name = *name;
    has_output |= *name == "lm_head.weight";
    has_qkv_bias |= name->ends_with("q_proj.bias");
    store.add(std::move(renamed), path.string());
  }
  config.tie_word_embeddings = !has_output;
  if (!gpt2) config.qkv_bias = has_qkv_bias;
  const HostTensor& embeddings =
      store.get(gpt2 ? "token_embd.weight" : "model.embed_tokens.weight");
  config.vocab_size = embeddings.shape.at(0);
  config.bos_token_id = token_id(*file, "tokenizer.ggml.bos_token_id");
  if (auto eos = token_id(*file, "tokenizer.ggml.eos_token_id"))
    config.eos_token_ids.push_back(*eos);
  if (auto eot = token_id(*file, "tokenizer.ggml.eot_token_id"))
    config.eos_token_ids.push_back(*eot);
  config.torch_dtype = "gguf";
  return Checkpoint{path, std::move(config), std::move(store), file};
}

}  // namespace flow2
