// MLX quantized checkpoints built here from the fixture models by a slow reference quantizer
// (per group: scale = (max - min) / (2^bits - 1), bias = min, q = round((w - bias) / scale),
// codes packed LSB-first into uint32 rows), then loaded through open_checkpoint: the weights
// decode to exactly scale * q + bias, the logits match a float32 model holding those decoded
// weights, and stay near the original model's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "flow2/error.h"
#include "flow2/model.h"
#include "flow2/safetensors.h"
#include "io/mlx_quantization.h"
#include "test_support.h"

namespace flow2 {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// How one module is quantized; bits == 0: stored unquantized.
struct Spec {
  int64_t group_size = 64;
  int bits = 4;
};

// Raw bytes of a tensor, owned by the tensor.
HostTensor bytes_tensor(std::string name, DType dtype, Shape shape, std::vector<std::byte> bytes) {
  auto storage = std::make_shared<std::vector<std::byte>>(std::move(bytes));
  HostTensor tensor;
  tensor.name = std::move(name);
  tensor.dtype = dtype;
  tensor.shape = std::move(shape);
  tensor.bytes = *storage;
  tensor.owner = storage;
  return tensor;
}

float round_to(DType dtype, float value) {
  switch (dtype) {
    case DType::F16:
      return f16_to_f32(f32_to_f16(value));
    case DType::BF16:
      return bf16_to_f32(f32_to_bf16(value));
    default:
      return value;
  }
}

HostTensor float_tensor(std::string name, DType dtype, Shape shape,
                        const std::vector<float>& values) {
  std::vector<std::byte> bytes(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &values[i], 4);
    } else {
      uint16_t bits = dtype == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
      std::memcpy(bytes.data() + 2 * i, &bits, 2);
    }
  }
  return bytes_tensor(std::move(name), dtype, std::move(shape), std::move(bytes));
}

// The three MLX tensors of one quantized [rows, columns] weight and what they decode to.
struct Quantized {
  HostTensor weight, scales, biases;
  std::vector<float> decoded;  // scale * q + bias, rounded once to float
};

Quantized quantize_reference(const std::string& module, const std::vector<float>& w, int64_t rows,
                             int64_t columns, Spec spec, DType scale_dtype) {
  const int64_t groups = columns / spec.group_size;
  const uint32_t top = (1u << spec.bits) - 1;
  std::vector<float> scales(static_cast<size_t>(rows * groups));
  std::vector<float> biases(scales.size());
  std::vector<uint32_t> words(static_cast<size_t>(rows * columns * spec.bits / 32), 0);
  std::vector<float> decoded(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* group = w.data() + r * columns + g * spec.group_size;
      float low = group[0], high = group[0];
      for (int64_t i = 0; i < spec.group_size; ++i) {
        low = std::min(low, group[i]);
        high = std::max(high, group[i]);
      }
      // Stored in the checkpoint's dtype; the codes are chosen for the stored values.
      const float scale = round_to(scale_dtype, (high - low) / static_cast<float>(top));
      const float bias = round_to(scale_dtype, low);
      scales[r * groups + g] = scale;
      biases[r * groups + g] = bias;
      for (int64_t i = 0; i < spec.group_size; ++i) {
        const int64_t j = g * spec.group_size + i;
        double q = scale == 0.0f ? 0.0 : std::round((group[i] - bias) / double{scale});
        const auto code = static_cast<uint32_t>(std::clamp(q, 0.0, double(top)));
        decoded[r * columns + j] = static_cast<float>(double{scale} * code + double{bias});
        // Element j of the row: bits j*bits.. of the row's bit stream, LSB first.
        for (int b = 0; b < spec.bits; ++b) {
          const int64_t bit = j * spec.bits + b;
          if ((code >> b) & 1u) {
            words[static_cast<size_t>(r * columns * spec.bits / 32 + bit / 32)] |= 1u << (bit % 32);
          }
        }
      }
    }
  }
  std::vector<std::byte> packed(words.size() * 4);
  std::memcpy(packed.data(), words.data(), packed.size());
  Quantized result;
  result.weight = bytes_tensor(module + ".weight", DType::U32, {rows, columns * spec.bits / 32},
                               std::move(packed));
  result.scales = float_tensor(module + ".scales", scale_dtype, {rows, groups}, scales);
  result.biases = float_tensor(module + ".biases", scale_dtype, {rows, groups}, biases);
  result.decoded = std::move(decoded);
  return result;
}

bool quantizable(const HostTensor& tensor) {
  return tensor.shape.size() == 2 && tensor.name.ends_with(".weight") &&
         tensor.name.find("norm") == std::string::npos;
}

std::string module_of(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - 7);
}

void write_json(const fs::path& path, const json& document) {
  fs::remove(path);
  testing::write_file(path, document.dump(2));
}

// An MLX checkpoint of a fixture in `directory`, and a float32 checkpoint of the weights it
// decodes to in `directory`-dequantized.
struct MlxBuild {
  MlxBuild(std::string fixture_name, Spec default_spec)
      : fixture(std::move(fixture_name)), defaults(default_spec) {}

  std::string fixture;
  Spec defaults;
  std::map<std::string, Spec> overrides;  // bits 0: unquantized (`false` in config.json)
  DType scale_dtype = DType::F16;
  bool tie_embeddings = false;  // drop lm_head and tie it to the quantized embedding
  bool sharded = false;         // scales and biases in a second shard
  // What the loaded weights must decode to, by tensor name.
  std::map<std::string, std::vector<float>> expected;
  std::map<std::string, Spec> used;

  Spec spec_for(const std::string& module) const {
    auto it = overrides.find(module);
    return it == overrides.end() ? defaults : it->second;
  }

  void write(const fs::path& directory) {
    const fs::path source = testing::model_path(fixture);
    fs::create_directories(directory);
    const fs::path dequantized = directory.string() + "-dequantized";
    fs::create_directories(dequantized);
    json config = json::parse(testing::read_file(source / "config.json"));
    if (tie_embeddings) config["tie_word_embeddings"] = true;
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
      fs::copy_file(source / file, directory / file);
      fs::copy_file(source / file, dequantized / file);
    }
    write_json(dequantized / "config.json", config);

    json quantization = {{"group_size", defaults.group_size}, {"bits", defaults.bits}};
    for (const auto& [module, spec] : overrides) {
      quantization[module] =
          spec.bits == 0 ? json(false) : json{{"group_size", spec.group_size}, {"bits", spec.bits}};
    }
    config["quantization"] = quantization;
    config["quantization_config"] = quantization;
    write_json(directory / "config.json", config);

    auto original = SafetensorsFile::open(source / "model.safetensors");
    std::vector<HostTensor> main, extra, plain;
    for (const HostTensor& tensor : original.tensors()) {
      if (tie_embeddings && tensor.name == "lm_head.weight") continue;
      std::vector<float> values = tensor.to_f32();
      const Spec spec = spec_for(module_of(tensor.name));
      // As mlx-lm, modules whose rows do not split into groups stay unquantized.
      if (!quantizable(tensor) || spec.bits == 0 || tensor.shape[1] % spec.group_size != 0) {
        main.push_back(tensor);
        plain.push_back(tensor);
        expected[tensor.name] = values;
        continue;
      }
      Quantized q = quantize_reference(module_of(tensor.name), values, tensor.shape[0],
                                       tensor.shape[1], spec, scale_dtype);
      if (spec.bits > 4 || spec.group_size % 32 != 0) {
        // flow2 decodes these to the scales' dtype: one more rounding.
        for (float& value : q.decoded) value = round_to(scale_dtype, value);
      }
      main.push_back(q.weight);
      (sharded ? extra : main).push_back(q.scales);
      (sharded ? extra : main).push_back(q.biases);
      plain.push_back(make_host_tensor(tensor.name, tensor.shape, q.decoded));
      expected[tensor.name] = q.decoded;
      used[tensor.name] = spec;
    }
    write_safetensors(dequantized / "model.safetensors", plain);
    if (!sharded) {
      write_safetensors(directory / "model.safetensors", main);
      return;
    }
    write_safetensors(directory / "model-00001-of-00002.safetensors", main);
    write_safetensors(directory / "model-00002-of-00002.safetensors", extra);
    json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
    for (const auto& t : main) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
    for (const auto& t : extra) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
    write_json(directory / "model.safetensors.index.json", index);
  }
};

std::vector<float> logits_of(const fs::path& directory, std::span<const int32_t> ids, int64_t batch,
                             bool one_at_a_time = false) {
  auto backend = make_cpu_backend();
  auto model = Model::load(open_checkpoint(directory), *backend);
  KVCache cache = model->make_cache(batch, 32);
  if (!one_at_a_time) return backend->to_host(model->forward(ids, batch, cache));
  // Single tokens take the matmul's dot-product path (few rows).
  std::vector<float> all;
  for (int32_t id : ids) {
    auto row = backend->to_host(model->forward(std::span(&id, 1), 1, cache));
    all.insert(all.end(), row.begin(), row.end());
  }
  return all;
}

std::vector<int32_t> reference_ids(const std::string& fixture) {
  auto reference = SafetensorsFile::open(testing::model_path(fixture) / "reference.safetensors");
  auto ids64 = reference.get("input_ids").to_i64();
  return {ids64.begin(), ids64.end()};
}

std::vector<float> reference_logits(const std::string& fixture) {
  auto reference = SafetensorsFile::open(testing::model_path(fixture) / "reference.safetensors");
  return reference.get("logits").to_f32();
}

void expect_weights(const fs::path& directory, const MlxBuild& build) {
  Checkpoint checkpoint = open_checkpoint(directory);
  for (const auto& [name, values] : build.expected) {
    const HostTensor& tensor = checkpoint.weights.get(name);
    auto used = build.used.find(name);
    if (used == build.used.end()) {
      EXPECT_EQ(tensor.dtype, DType::F32) << name;
    } else if (used->second.bits <= 4 && used->second.group_size % 32 == 0) {
      EXPECT_EQ(tensor.dtype, DType::Q4_1) << name;
    } else {
      EXPECT_EQ(tensor.dtype, build.scale_dtype) << name;
    }
    std::vector<float> actual = tensor.to_f32();
    ASSERT_EQ(actual.size(), values.size()) << name;
    size_t mismatches = 0;
    for (size_t i = 0; i < values.size(); ++i) mismatches += actual[i] != values[i];
    EXPECT_EQ(mismatches, 0u) << name;
  }
  for (const auto& [name, tensor] : checkpoint.weights.tensors()) {
    EXPECT_FALSE(name.ends_with(".scales") || name.ends_with(".biases")) << name;
  }
}

TEST(MlxCheckpoint, FourBitWeightsBecomeQ4_1AndDecodeToScaleTimesCodePlusBias) {
  testing::TempDir dir;
  MlxBuild build{"tiny-llama", {32, 4}};
  build.write(dir / "mlx");
  expect_weights(dir / "mlx", build);
  Checkpoint checkpoint = open_checkpoint(dir / "mlx");
  // 20 bytes per 32 weights instead of 128.
  EXPECT_EQ(checkpoint.weights.get("model.layers.0.mlp.down_proj.weight").bytes.size(),
            64u * 160 / 32 * 20);
}

struct LogitCase {
  std::string fixture;
  int64_t group_size;
};

class MlxLogits : public ::testing::TestWithParam<LogitCase> {};

TEST_P(MlxLogits, MatchTheDequantizedModelAndStayNearTheOriginal) {
  testing::TempDir dir;
  MlxBuild build{GetParam().fixture, {GetParam().group_size, 4}};
  build.write(dir / "mlx");
  const auto ids = reference_ids(build.fixture);
  auto quantized = logits_of(dir / "mlx", ids, 2);
  auto dequantized = logits_of(dir.path().string() + "/mlx-dequantized", ids, 2);
  // The same weights in Q4_1 and in float32: only the order of the sums differs.
  EXPECT_LE(testing::max_abs_difference(quantized, dequantized), 1e-4);
  // Token by token: dot products straight from the packed blocks. The CPU backend may quantize x
  // to int8 blocks there (as llama.cpp does for decoding), which moves these logits by ~0.05; a
  // misplaced code or scale would move them by about as much as 4-bit quantization does (~1).
  std::vector<int32_t> first(ids.begin(), ids.begin() + 12);
  EXPECT_LE(testing::max_abs_difference(
                logits_of(dir / "mlx", first, 1, true),
                logits_of(dir.path().string() + "/mlx-dequantized", first, 1, true)),
            0.15);
  // Against the unquantized model: 4-bit Gaussian weights move these logits (standard deviation
  // near 1) by up to ~1, as in the GGUF Q4_1 export test; well above the f32 tolerance of 1e-4.
  const double error = testing::max_abs_difference(quantized, reference_logits(build.fixture));
  EXPECT_LE(error, 2.0);
  EXPECT_GT(error, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MlxLogits,
                         ::testing::Values(LogitCase{"tiny-llama", 32},
                                           LogitCase{"tiny-qwen2", 64}),
                         [](const auto& info) {
                           std::string name = info.param.fixture;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(MlxCheckpoint, PerLayerOverridesMixBitWidthsAndUnquantizedLayers) {
  testing::TempDir dir;
  MlxBuild build{"tiny-llama", {32, 4}};
  build.overrides = {{"model.layers.0.mlp.down_proj", {32, 8}},      // decoded to f16
                     {"model.layers.1.self_attn.q_proj", {0, 0}},    // `false`: plain f32 tensor
                     {"model.layers.2.mlp.up_proj", {64, 2}},        // Q4_1 with 2-bit codes
                     {"model.layers.2.mlp.gate_proj", {32, 3}},      // codes straddle words, Q4_1
                     {"model.layers.1.mlp.down_proj", {32, 6}},      // straddle, decoded
                     {"model.layers.0.self_attn.v_proj", {64, 5}}};  // decoded
  build.write(dir / "mlx");
  expect_weights(dir / "mlx", build);
  const auto ids = reference_ids("tiny-llama");
  EXPECT_LE(
      testing::max_abs_difference(logits_of(dir / "mlx", ids, 2),
                                  logits_of(dir.path().string() + "/mlx-dequantized", ids, 2)),
      1e-4);
}

TEST(MlxCheckpoint, TiedQuantizedEmbeddingIsTheHead) {
  testing::TempDir dir;
  MlxBuild build{"tiny-llama", {64, 4}};
  build.tie_embeddings = true;
  build.sharded = true;
  build.scale_dtype = DType::BF16;
  build.write(dir / "mlx");
  expect_weights(dir / "mlx", build);
  Checkpoint checkpoint = open_checkpoint(dir / "mlx");
  EXPECT_TRUE(checkpoint.config.tie_word_embeddings);
  EXPECT_EQ(checkpoint.weights.find("lm_head.weight"), nullptr);
  EXPECT_EQ(checkpoint.weights.get("model.embed_tokens.weight").dtype, DType::Q4_1);
  const auto ids = reference_ids("tiny-llama");
  EXPECT_LE(
      testing::max_abs_difference(logits_of(dir / "mlx", ids, 2),
                                  logits_of(dir.path().string() + "/mlx-dequantized", ids, 2)),
      1e-4);
}

TEST(MlxCheckpoint, GroupsOfOtherSizesAreDecodedToTheModelDtype) {
  // tiny-smol's hidden size 48 takes groups of 16, which Q4_1's 32-element blocks cannot hold.
  testing::TempDir dir;
  MlxBuild build{"tiny-smol", {16, 4}};
  build.write(dir / "mlx");
  expect_weights(dir / "mlx", build);
  const auto ids = reference_ids("tiny-smol");
  EXPECT_LE(
      testing::max_abs_difference(logits_of(dir / "mlx", ids, 2),
                                  logits_of(dir.path().string() + "/mlx-dequantized", ids, 2)),
      1e-4);
}

TEST(MlxCheckpoint, GenerateRunsOnTheDirectory) {
  testing::TempDir dir;
  MlxBuild build{"tiny-llama", {32, 4}};
  build.write(dir / "mlx");
  auto result = testing::run_cli("generate --model " + (dir / "mlx").string() +
                                 " --prompt-ids 5,6,7,8 --max-tokens 12 --temp 0 --ignore-eos "
                                 "--json");
  ASSERT_EQ(result.status, 0) << result.output;
  json out = json::parse(result.stdout_text);
  EXPECT_EQ(out["generated_tokens"], 12);
  // Greedy decoding of the first token agrees with the model that holds the decoded weights.
  auto dequantized =
      logits_of(dir.path().string() + "/mlx-dequantized", std::vector<int32_t>{5, 6, 7, 8}, 1);
  const auto last = dequantized.end() - 320;
  EXPECT_EQ(out["ids"][0], std::max_element(last, dequantized.end()) - last);
}

TEST(MlxDequantize, EveryBitWidthUnpacksLsbFirst) {
  // One row of 64 codes counting up, scale 0.5 and bias -3 (exact in f16).
  for (int bits = 1; bits <= 8; ++bits) {
    const int64_t columns = 64;
    std::vector<uint32_t> words(static_cast<size_t>(columns * bits / 32), 0);
    std::vector<uint32_t> codes(columns);
    for (int64_t j = 0; j < columns; ++j) {
      codes[j] = static_cast<uint32_t>((j * 7 + 3) % (1 << bits));
      for (int b = 0; b < bits; ++b) {
        if ((codes[j] >> b) & 1u) words[(j * bits + b) / 32] |= 1u << ((j * bits + b) % 32);
      }
    }
    std::vector<std::byte> bytes(words.size() * 4);
    std::memcpy(bytes.data(), words.data(), bytes.size());
    auto packed = bytes_tensor("w.weight", DType::U32, {1, columns * bits / 32}, bytes);
    auto scales = float_tensor("w.scales", DType::F16, {1, 2}, {0.5f, 0.25f});
    auto biases = float_tensor("w.biases", DType::F16, {1, 2}, {-3.0f, 1.0f});
    HostTensor result = mlx_dequantized_weight("w.weight", packed, scales, biases,
                                               MlxQuantParams{32, bits}, "test");
    EXPECT_EQ(result.dtype, bits <= 4 ? DType::Q4_1 : DType::F16) << bits;
    auto values = result.to_f32();
    for (int64_t j = 0; j < columns; ++j) {
      const float expected = j < 32 ? 0.5f * codes[j] - 3.0f : 0.25f * codes[j] + 1.0f;
      EXPECT_EQ(values[j], expected) << "bits " << bits << " element " << j;
    }
  }
}

TEST(MlxDequantize, ScalesBeyondF16AreDecodedInstead) {
  // A bias f16 cannot hold (1e5 > 65504): the weight is decoded to the scales' dtype, f32.
  std::vector<std::byte> bytes(16, std::byte{0x21});
  auto packed = bytes_tensor("w.weight", DType::U32, {1, 4}, bytes);
  auto scales = float_tensor("w.scales", DType::F32, {1, 1}, {1.0f});
  auto biases = float_tensor("w.biases", DType::F32, {1, 1}, {1e5f});
  HostTensor result =
      mlx_dequantized_weight("w.weight", packed, scales, biases, MlxQuantParams{32, 4}, "test");
  EXPECT_EQ(result.dtype, DType::F32);
  auto values = result.to_f32();
  EXPECT_EQ(values[0], 1e5f + 1);
  EXPECT_EQ(values[1], 1e5f + 2);
  // A bf16 scale in f16's subnormal range rounds, but the tensor's other groups dwarf the change.
  auto big_packed = bytes_tensor("w.weight", DType::U32, {2, 4}, std::vector<std::byte>(32));
  auto small = float_tensor("w.scales", DType::BF16, {2, 1}, {0.01f, 3e-7f});
  auto zero = float_tensor("w.biases", DType::BF16, {2, 1}, {0.0f, 1e-7f});
  EXPECT_EQ(
      mlx_dequantized_weight("w.weight", big_packed, small, zero, MlxQuantParams{32, 4}, "test")
          .dtype,
      DType::Q4_1);
}

// Expects `action` to throw a flow2::Error whose message holds every one of `parts`.
template <typename Action>
void expect_error(Action action, std::initializer_list<std::string> parts) {
  try {
    action();
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    std::string message = error.what();
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

class MlxErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    MlxBuild build{"tiny-llama", {32, 4}};
    build.write(dir_ / "mlx");
  }
  fs::path path() const { return dir_ / "mlx"; }
  json config() const { return json::parse(testing::read_file(path() / "config.json")); }
  void set_config(const json& document) const { write_json(path() / "config.json", document); }
  // Rewrites model.safetensors through `edit` of its tensors.
  template <typename Edit>
  void edit_tensors(Edit edit) const {
    auto file = SafetensorsFile::open(path() / "model.safetensors");
    std::vector<HostTensor> tensors = file.tensors();
    edit(tensors);
    write_safetensors(path() / "model.safetensors.new", tensors);
    fs::rename(path() / "model.safetensors.new", path() / "model.safetensors");
  }
  void drop(const std::string& name) const {
    edit_tensors([&](std::vector<HostTensor>& tensors) {
      std::erase_if(tensors, [&](const HostTensor& t) { return t.name == name; });
    });
  }
  testing::TempDir dir_;
};

TEST_F(MlxErrors, MissingBiases) {
  drop("model.layers.1.mlp.up_proj.biases");
  expect_error([&] { open_checkpoint(path()); },
               {"model.safetensors", "model.layers.1.mlp.up_proj.biases"});
}

TEST_F(MlxErrors, MissingScales) {
  drop("model.layers.1.mlp.up_proj.scales");
  expect_error([&] { open_checkpoint(path()); },
               {"model.safetensors", "model.layers.1.mlp.up_proj.weight", "scales"});
}

TEST_F(MlxErrors, MissingPackedWeight) {
  drop("model.layers.1.mlp.up_proj.weight");
  expect_error([&] { open_checkpoint(path()); }, {"model.layers.1.mlp.up_proj.weight"});
}

TEST_F(MlxErrors, BitsThatDoNotMatchTheTensors) {
  json document = config();
  document["quantization"]["bits"] = 8;
  set_config(document);
  expect_error([&] { open_checkpoint(path()); },
               {"model.safetensors", ".weight", "uint32 words", "8 bits"});
}

TEST_F(MlxErrors, GroupSizeThatDoesNotMatchAnOverride) {
  json document = config();
  document["quantization"]["model.layers.2.mlp.down_proj"] = {{"group_size", 64}, {"bits", 4}};
  set_config(document);
  expect_error([&] { open_checkpoint(path()); }, {"model.layers.2.mlp.down_proj.weight"});
}

TEST_F(MlxErrors, UnsupportedBitsAndModes) {
  json document = config();
  document["quantization"]["bits"] = 16;
  set_config(document);
  expect_error([&] { open_checkpoint(path()); }, {"config.json", "quantization.bits", "16"});
  document = config();
  document["quantization"]["bits"] = 4;
  document["quantization"]["mode"] = "mxfp4";
  set_config(document);
  expect_error([&] { open_checkpoint(path()); }, {"config.json", "quantization.mode", "mxfp4"});
  document["quantization"]["mode"] = "affine";
  document["quantization"]["group_size"] = 0;
  set_config(document);
  expect_error([&] { open_checkpoint(path()); }, {"config.json", "quantization.group_size"});
}

TEST_F(MlxErrors, LayerMarkedUnquantizedButStoredQuantized) {
  json document = config();
  document["quantization"]["model.layers.0.self_attn.o_proj"] = false;
  set_config(document);
  expect_error([&] { open_checkpoint(path()); },
               {"config.json", "model.layers.0.self_attn.o_proj", "not quantized"});
}

TEST_F(MlxErrors, QuantizedTensorsWithoutAQuantizationSection) {
  json document = config();
  document.erase("quantization");
  document.erase("quantization_config");
  set_config(document);
  expect_error([&] { open_checkpoint(path()); }, {"config.json", "'quantization'"});
}

TEST_F(MlxErrors, OtherQuantizationMethods) {
  json document = config();
  document.erase("quantization");
  document["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  set_config(document);
  expect_error([&] { open_checkpoint(path()); }, {"quantization_config", "gptq"});
}

TEST_F(MlxErrors, ScalesOfTheWrongShape) {
  edit_tensors([](std::vector<HostTensor>& tensors) {
    for (auto& t : tensors) {
      if (t.name == "model.layers.0.mlp.gate_proj.scales") {
        t.shape = {t.shape[1], t.shape[0]};
      }
    }
  });
  expect_error([&] { open_checkpoint(path()); }, {"model.layers.0.mlp.gate_proj.scales"});
}

}  // namespace
}  // namespace flow2
