#include "flow2/gguf_export.h"

#include <fmt/format.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/json_fields.h"
#include "flow2/error.h"
#include "flow2/gguf.h"
#include "flow2/quant.h"
#include "flow2/tokenizer_config.h"
#include "model/rope_frequencies.h"

namespace flow2 {
namespace {

using nlohmann::json;

// Hugging Face name -> ggml name for the llama family.
std::optional<std::string> ggml_name(const std::string& name) {
  static const std::pair<const char*, const char*> kGlobal[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  for (const auto& [from, to] : kGlobal) {
    if (name == from) return std::string(to);
  }
  static const std::regex kLayer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
  static const std::pair<const char*, const char*> kParts[] = {
      {"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},   {"self_attn.o_proj", "attn_output"},
      {"mlp.gate_proj", "ffn_gate"},    {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  std::smatch match;
  if (!std::regex_match(name, match, kLayer)) return std::nullopt;
  for (const auto& [from, to] : kParts) {
    if (match[2] == from) return fmt::format("blk.{}.{}.{}", match[1].str(), to, match[3].str());
  }
  return std::nullopt;
}

// llama.cpp's converter order for q/k rows: within each head, row i of the first half and row
// i of the second half become rows 2i and 2i+1.
std::vector<float> permute_rows(const std::vector<float>& values, int64_t rows, int64_t cols,
                                int64_t heads) {
  const int64_t head_dim = rows / heads;
  std::vector<float> out(values.size());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t j = 0; j < 2; ++j) {
      for (int64_t i = 0; i < head_dim / 2; ++i) {
        const int64_t from = h * head_dim + j * (head_dim / 2) + i;
        const int64_t to = h * head_dim + 2 * i + j;
        std::memcpy(out.data() + to * cols, values.data() + from * cols, cols * sizeof(float));
      }
    }
  }
  return out;
}

std::string pre_tokenizer_name(const json& pre, const std::string& source) {
  if (pre.is_object() && pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true)) {
    return "gpt2";
  }
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    const json& steps = pre["pretokenizers"];
    if (steps.size() == 2 && steps[0].value("type", "") == "Digits" &&
        steps[1].value("type", "") == "ByteLevel") {
      return "smollm";
    }
    if (steps.size() == 2 && steps[0].value("type", "") == "Split") {
      std::string regex = steps[0]["pattern"].value("Regex", "");
      if (regex.find("\\p{N}{1,3}") != std::string::npos) return "llama-bpe";
      if (regex.find("|\\p{N}|") != std::string::npos) return "qwen2";
    }
  }
  fail("{}: this pre-tokenizer has no GGUF equivalent flow2 knows", source);
}

GgufValue strings(const std::vector<std::string>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (const auto& item : items) values.push_back(GgufValue::of_string(item));
  return GgufValue::of_array(GgufType::STRING, std::move(values));
}

void add_vocabulary(GgufMetadata& metadata, const Checkpoint& checkpoint) {
  auto path = checkpoint.path / "tokenizer.json";
  const std::string source = path.string();
  json document = read_json_file(path);
  const json& model = document["model"];
  check(model.value("type", "BPE") == "BPE" && model.contains("vocab"),
        "{}: only BPE vocabularies convert to GGUF", source);
  std::vector<std::string> tokens(static_cast<size_t>(checkpoint.config.vocab_size));
  std::vector<GgufValue> types(tokens.size(), GgufValue{GgufType::I32, int64_t{1}});
  for (const auto& [token, id] : model["vocab"].items()) {
    if (id.get<size_t>() < tokens.size()) tokens[id.get<size_t>()] = token;
  }
  for (const auto& added : document.value("added_tokens", json::array())) {
    size_t id = added["id"].get<size_t>();
    if (id >= tokens.size()) continue;
    tokens[id] = added["content"].get<std::string>();
    types[id] = GgufValue{GgufType::I32, int64_t{added.value("special", false) ? 3 : 4}};
  }
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (tokens[id].empty()) {  // ids the vocabulary leaves unused (padding rows)
      tokens[id] = fmt::format("[PAD{}]", id);
      types[id] = GgufValue{GgufType::I32, int64_t{5}};
    }
  }
  std::vector<std::string> merges;
  for (const auto& merge : model.value("merges", json::array())) {
    merges.push_back(merge.is_string()
                         ? merge.get<std::string>()
                         : merge[0].get<std::string>() + " " + merge[1].get<std::string>());
  }
  metadata.emplace_back("tokenizer.ggml.model", GgufValue::of_string("gpt2"));
  metadata.emplace_back("tokenizer.ggml.pre", GgufValue::of_string(pre_tokenizer_name(
                                                  document["pre_tokenizer"], source)));
  metadata.emplace_back("tokenizer.ggml.tokens", strings(tokens));
  metadata.emplace_back("tokenizer.ggml.token_type",
                        GgufValue::of_array(GgufType::I32, std::move(types)));
  metadata.emplace_back("tokenizer.ggml.merges", strings(merges));
  const ModelConfig& config = checkpoint.config;
  if (config.bos_token_id) {
    metadata.emplace_back("tokenizer.ggml.bos_token_id",
                          GgufValue::of_uint32(static_cast<uint32_t>(*config.bos_token_id)));
  }
  if (!config.eos_token_ids.empty()) {
    metadata.emplace_back("tokenizer.ggml.eos_token_id",
                          GgufValue::of_uint32(static_cast<uint32_t>(config.eos_token_ids[0])));
  }
  bool adds_bos = document.contains("post_processor") &&
                  document["post_processor"].dump().find("TemplateProcessing") != std::string::npos;
  metadata.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::of_bool(adds_bos));
  TokenizerConfig tokenizer_config = load_tokenizer_config(checkpoint.path);
  if (tokenizer_config.chat_template) {
    metadata.emplace_back("tokenizer.chat_template",
                          GgufValue::of_string(*tokenizer_config.chat_template));
  }
}

HostTensor owned_tensor(std::string name, DType dtype, Shape shape, std::vector<std::byte> bytes) {
  auto storage = std::make_shared<std::vector<std::byte>>(std::move(bytes));
  return HostTensor{std::move(name), dtype, std::move(shape), *storage, storage};
}

// The type of a matrix whose rows have `row_length` elements: `weight_type` where rows are whole
// blocks. Otherwise the K types fall back as llama.cpp's quantizer does, to a type of 32-element
// blocks (Q4_K -> Q4_1, where llama.cpp takes Q5_0, which flow2 does not write; Q5_K and
// Q6_K -> Q8_0), or to F16 where rows are not whole blocks of 32 either; the 32-element types
// fall back to F32.
DType matrix_type(DType weight_type, int64_t row_length) {
  auto whole_blocks = [&](DType dtype) {
    return row_length % static_cast<int64_t>(dtype_block_elements(dtype)) == 0;
  };
  if (whole_blocks(weight_type)) return weight_type;
  if (weight_type == DType::Q4_K || weight_type == DType::Q5_K || weight_type == DType::Q6_K) {
    const DType fallback = weight_type == DType::Q4_K ? DType::Q4_1 : DType::Q8_0;
    return whole_blocks(fallback) ? fallback : DType::F16;
  }
  return DType::F32;
}

HostTensor encode(std::string name, const std::vector<float>& values, Shape shape, DType dtype) {
  std::vector<std::byte> bytes(dtype_bytes(dtype, values.size()));
  if (dtype == DType::F32) {
    std::memcpy(bytes.data(), values.data(), bytes.size());
  } else if (dtype == DType::F16) {
    for (size_t i = 0; i < values.size(); ++i) {
      uint16_t bits = f32_to_f16(values[i]);
      std::memcpy(bytes.data() + 2 * i, &bits, 2);
    }
  } else {
    quantize_blocks(dtype, values.data(), values.size(), bytes.data());
  }
  return owned_tensor(std::move(name), dtype, std::move(shape), std::move(bytes));
}

// The storage type of one tensor: matrices take `weight_type` (or its fallback, matrix_type),
// everything else stays float32.
DType storage_type(const Shape& shape, DType weight_type) {
  if (shape.size() != 2) return DType::F32;
  return matrix_type(weight_type, shape[1]);
}

std::vector<float> transposed(const std::vector<float>& values, int64_t rows, int64_t cols) {
  std::vector<float> out(values.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = values[r * cols + c];
  }
  return out;
}

// Hugging Face GPT-2 name (without "transformer.") -> ggml name, and whether the weight is a
// Conv1D [in, out] matrix that llama.cpp stores transposed.
std::optional<std::pair<std::string, bool>> gpt2_ggml_name(const std::string& name) {
  static const std::pair<const char*, const char*> kGlobal[] = {
      {"wte.weight", "token_embd.weight"},
      {"wpe.weight", "position_embd.weight"},
      {"ln_f.weight", "output_norm.weight"},
      {"ln_f.bias", "output_norm.bias"},
      {"lm_head.weight", "output.weight"}};
  for (const auto& [from, to] : kGlobal) {
    if (name == from) return std::pair(std::string(to), false);
  }
  static const std::regex kLayer(R"(h\.(\d+)\.(.+)\.(weight|bias))");
  static const std::pair<const char*, const char*> kParts[] = {
      {"ln_1", "attn_norm"}, {"attn.c_attn", "attn_qkv"}, {"attn.c_proj", "attn_output"},
      {"ln_2", "ffn_norm"},  {"mlp.c_fc", "ffn_up"},      {"mlp.c_proj", "ffn_down"}};
  std::smatch match;
  if (!std::regex_match(name, match, kLayer)) return std::nullopt;
  for (const auto& [from, to] : kParts) {
    if (match[2] == from) {
      const bool conv1d = match[3] == "weight" && match[2].str().find('.') != std::string::npos;
      return std::pair(fmt::format("blk.{}.{}.{}", match[1].str(), to, match[3].str()), conv1d);
    }
  }
  return std::nullopt;
}

// GPT-2 in llama.cpp's gpt2 layout. Its graph has no per-layer attention scaling and uses the
// tanh approximation of gelu, so models that differ there are refused rather than changed.
void export_gpt2(const Checkpoint& checkpoint, const std::filesystem::path& path,
                 DType weight_type) {
  const ModelConfig& config = checkpoint.config;
  const std::string source = checkpoint.path.string();
  check(config.activation == Activation::GeluTanh,
        "{}: llama.cpp's gpt2 uses gelu_new (tanh); this model's activation has no GGUF form",
        source);
  check(config.scale_attn_weights && !config.scale_attn_by_inverse_layer_idx,
        "{}: GGUF gpt2 has no form for scale_attn_weights=false or "
        "scale_attn_by_inverse_layer_idx",
        source);
  GgufMetadata metadata;
  auto u32 = [](int64_t value) { return GgufValue::of_uint32(static_cast<uint32_t>(value)); };
  metadata.emplace_back("general.architecture", GgufValue::of_string("gpt2"));
  metadata.emplace_back("general.name", GgufValue::of_string(checkpoint.path.filename().string()));
  metadata.emplace_back("gpt2.block_count", u32(config.num_layers));
  metadata.emplace_back("gpt2.context_length", u32(config.max_position_embeddings));
  metadata.emplace_back("gpt2.embedding_length", u32(config.hidden_size));
  metadata.emplace_back("gpt2.feed_forward_length", u32(config.intermediate_size));
  metadata.emplace_back("gpt2.attention.head_count", u32(config.num_heads));
  metadata.emplace_back("gpt2.attention.layer_norm_epsilon",
                        GgufValue::of_float32(static_cast<float>(config.norm_eps)));
  add_vocabulary(metadata, checkpoint);

  std::vector<HostTensor> tensors;
  for (const auto& [full_name, tensor] : checkpoint.weights.tensors()) {
    std::string name = full_name;
    if (name.starts_with("transformer.")) name = name.substr(std::strlen("transformer."));
    // Attention-mask buffers of older checkpoints, and a head that only repeats wte.
    if (name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    auto target = gpt2_ggml_name(name);
    check(target.has_value(), "{}: tensor '{}' has no GGUF name", source, full_name);
    std::vector<float> values = tensor.to_f32();
    Shape shape = tensor.shape;
    if (target->second) {
      check(shape.size() == 2, "{}: tensor '{}' is not a matrix", source, full_name);
      values = transposed(values, shape[0], shape[1]);
      shape = {shape[1], shape[0]};
    }
    // llama.cpp's quantizer leaves position embeddings alone.
    const DType dtype = target->first == "position_embd.weight" && is_quantized(weight_type)
                            ? DType::F32
                            : storage_type(shape, weight_type);
    tensors.push_back(encode(target->first, values, shape, dtype));
  }
  write_gguf(path, metadata, tensors);
}

}  // namespace

void export_gguf(const Checkpoint& checkpoint, const std::filesystem::path& path,
                 const GgufExportOptions& options) {
  const ModelConfig& config = checkpoint.config;
  const std::string source = checkpoint.path.string();
  check(config.model_type != "qwen2", "{}: GGUF export supports llama, mistral and gpt2 models",
        source);
  check(!checkpoint.gguf, "{}: already a GGUF file", source);
  const DType weight_type = options.weight_type;
  check(weight_type == DType::F32 || weight_type == DType::F16 || weight_type == DType::Q8_0 ||
            weight_type == DType::Q4_0 || weight_type == DType::Q4_1 ||
            weight_type == DType::Q4_K || weight_type == DType::Q5_K || weight_type == DType::Q6_K,
        "GGUF export writes F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K or Q6_K weights, not {}",
        dtype_name(weight_type));
  if (config.family == ModelFamily::Gpt2) {
    export_gpt2(checkpoint, path, weight_type);
    return;
  }

  GgufMetadata metadata;
  auto u32 = [](int64_t value) { return GgufValue::of_uint32(static_cast<uint32_t>(value)); };
  metadata.emplace_back("general.architecture", GgufValue::of_string("llama"));
  metadata.emplace_back("general.name", GgufValue::of_string(checkpoint.path.filename().string()));
  metadata.emplace_back("llama.block_count", u32(config.num_layers));
  metadata.emplace_back("llama.context_length", u32(config.max_position_embeddings));
  metadata.emplace_back("llama.embedding_length", u32(config.hidden_size));
  metadata.emplace_back("llama.feed_forward_length", u32(config.intermediate_size));
  metadata.emplace_back("llama.attention.head_count", u32(config.num_heads));
  metadata.emplace_back("llama.attention.head_count_kv", u32(config.num_kv_heads));
  metadata.emplace_back("llama.attention.key_length", u32(config.head_dim));
  metadata.emplace_back("llama.attention.value_length", u32(config.head_dim));
  metadata.emplace_back("llama.rope.dimension_count", u32(config.head_dim));
  metadata.emplace_back("llama.rope.freq_base",
                        GgufValue::of_float32(static_cast<float>(config.rope.theta)));
  metadata.emplace_back("llama.attention.layer_norm_rms_epsilon",
                        GgufValue::of_float32(static_cast<float>(config.norm_eps)));
  metadata.emplace_back("llama.vocab_size", u32(config.vocab_size));
  if (config.sliding_window > 0) {
    metadata.emplace_back("llama.attention.sliding_window", u32(config.sliding_window));
  }
  check(!config.qkv_bias && !config.o_bias && !config.mlp_bias,
        "{}: llama models with biases have no GGUF llama layout", source);

  std::vector<HostTensor> tensors;
  switch (config.rope.type) {
    case RopeType::Default:
      break;
    case RopeType::Linear:
      metadata.emplace_back("llama.rope.scaling.type", GgufValue::of_string("linear"));
      metadata.emplace_back("llama.rope.scaling.factor",
                            GgufValue::of_float32(static_cast<float>(config.rope.factor)));
      break;
    case RopeType::Llama3: {
      // llama.cpp stores Llama 3 scaling as per-frequency divisors.
      RopeConfig plain = config.rope;
      plain.type = RopeType::Default;
      auto base = rope_inverse_frequencies(plain, config.head_dim, config.max_position_embeddings,
                                           config.max_position_embeddings);
      auto scaled =
          rope_inverse_frequencies(config.rope, config.head_dim, config.max_position_embeddings,
                                   config.max_position_embeddings);
      std::vector<float> factors(base.size());
      for (size_t i = 0; i < base.size(); ++i) factors[i] = base[i] / scaled[i];
      tensors.push_back(
          encode("rope_freqs.weight", factors, {static_cast<int64_t>(factors.size())}, DType::F32));
      break;
    }
    default:
      fail("{}: {} RoPE scaling has no GGUF form here", source, "dynamic");
  }
  add_vocabulary(metadata, checkpoint);

  for (const auto& [name, tensor] : checkpoint.weights.tensors()) {
    auto target = ggml_name(name);
    check(target.has_value(), "{}: tensor '{}' has no GGUF name", source, name);
    std::vector<float> values = tensor.to_f32();
    if (name.ends_with("q_proj.weight")) {
      values = permute_rows(values, tensor.shape[0], tensor.shape[1], config.num_heads);
    } else if (name.ends_with("k_proj.weight")) {
      values = permute_rows(values, tensor.shape[0], tensor.shape[1], config.num_kv_heads);
    }
    tensors.push_back(
        encode(*target, values, tensor.shape, storage_type(tensor.shape, weight_type)));
  }
  write_gguf(path, metadata, tensors);
}

}  // namespace flow2
