// MLX quantized weights → compact flow2 weights (Q4_1 blocks, or decoded to the model dtype).
// The layout is described in mlx_quantization.h.
#include "io/mlx_quantization.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/json_fields.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

constexpr int kMaxBits = 8;
constexpr int64_t kQ4Block = 32;
constexpr size_t kQ4_1BlockBytes = 20;  // f16 d, f16 m, 16 bytes of nibbles

MlxQuantParams parse_params(const nlohmann::json& object, const MlxQuantParams& fallback,
                            const std::string& where, const std::string& source) {
  MlxQuantParams params = fallback;
  if (auto group = optional_int(object, "group_size", source)) params.group_size = *group;
  if (auto bits = optional_int(object, "bits", source)) params.bits = static_cast<int>(*bits);
  if (auto mode = optional_string(object, "mode", source)) {
    check(*mode == "affine",
          "{}: {}.mode is '{}'; flow2 reads MLX's affine quantization (scales and biases) only",
          source, where, *mode);
  }
  check(params.group_size > 0, "{}: {}.group_size is {}, expected a positive number", source, where,
        params.group_size);
  check(params.bits >= 1 && params.bits <= kMaxBits,
        "{}: {}.bits is {}; MLX affine quantization uses 1 to {} bits", source, where, params.bits,
        kMaxBits);
  return params;
}

// Code j of a row of little-endian uint32 words holding `bits`-bit codes back to back.
class CodeReader {
 public:
  CodeReader(const std::byte* row, int bits) : row_(row), bits_(bits), mask_((1u << bits) - 1) {}
  uint32_t operator()(int64_t j) const {
    const uint64_t bit = static_cast<uint64_t>(j) * static_cast<uint64_t>(bits_);
    const uint64_t word = bit / 32;
    const unsigned shift = static_cast<unsigned>(bit % 32);
    uint64_t value = load(word) >> shift;
    if (shift + static_cast<unsigned>(bits_) > 32) value |= load(word + 1) << (32 - shift);
    return static_cast<uint32_t>(value) & mask_;
  }

 private:
  uint64_t load(uint64_t word) const {
    uint32_t value;  // safetensors data need not be 4-byte aligned
    std::memcpy(&value, row_ + word * 4, 4);
    return value;
  }
  const std::byte* row_;
  int bits_;
  uint32_t mask_;
};

// Whether f16 holds every group's scale and bias well enough: exactly, or moving no weight by
// more than 2^-11 of the tensor's largest magnitude (tiny scales of near-zero rows round in f16's
// subnormal range; f32 scales round to f16's precision).
bool f16_represents(const std::vector<float>& scales, const std::vector<float>& biases, int bits) {
  const double top = static_cast<double>((1u << bits) - 1);
  double largest = 0.0;
  for (size_t g = 0; g < scales.size(); ++g) {
    largest = std::max(largest, std::abs(double{scales[g]}) * top + std::abs(double{biases[g]}));
  }
  if (!std::isfinite(largest)) return false;
  const double tolerance = std::ldexp(largest, -11);
  for (size_t g = 0; g < scales.size(); ++g) {
    const float scale = f16_to_f32(f32_to_f16(scales[g]));
    const float bias = f16_to_f32(f32_to_f16(biases[g]));
    if (!std::isfinite(scale) || !std::isfinite(bias)) return false;
    const double moved =
        std::abs(double{scale} - scales[g]) * top + std::abs(double{bias} - biases[g]);
    if (moved > tolerance) return false;
  }
  return true;
}

struct Layout {
  int64_t rows, columns, groups;
  MlxQuantParams params;
  size_t row_bytes;  // of the packed codes
};

HostTensor owning_tensor(const std::string& name, DType dtype, Shape shape,
                         std::shared_ptr<std::vector<std::byte>> storage) {
  HostTensor tensor;
  tensor.name = name;
  tensor.dtype = dtype;
  tensor.shape = std::move(shape);
  tensor.bytes = std::span<const std::byte>(storage->data(), storage->size());
  tensor.owner = std::move(storage);
  return tensor;
}

HostTensor to_q4_1(const std::string& name, const HostTensor& packed,
                   const std::vector<float>& scales, const std::vector<float>& biases,
                   const Layout& layout) {
  const int64_t blocks = layout.columns / kQ4Block;
  const size_t row_out = static_cast<size_t>(blocks) * kQ4_1BlockBytes;
  auto storage = std::make_shared<std::vector<std::byte>>(row_out * layout.rows);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < layout.rows; ++r) {
    CodeReader code(packed.bytes.data() + r * layout.row_bytes, layout.params.bits);
    auto* out = reinterpret_cast<uint8_t*>(storage->data() + r * row_out);
    for (int64_t b = 0; b < blocks; ++b, out += kQ4_1BlockBytes) {
      const int64_t first = b * kQ4Block;
      const size_t group =
          static_cast<size_t>(r * layout.groups + first / layout.params.group_size);
      const uint16_t d = f32_to_f16(scales[group]), m = f32_to_f16(biases[group]);
      std::memcpy(out, &d, 2);
      std::memcpy(out + 2, &m, 2);
      for (int64_t j = 0; j < kQ4Block / 2; ++j) {
        out[4 + j] = static_cast<uint8_t>(code(first + j) | (code(first + j + 16) << 4));
      }
    }
  }
  return owning_tensor(name, DType::Q4_1, {layout.rows, layout.columns}, std::move(storage));
}

HostTensor decoded(const std::string& name, const HostTensor& packed, DType dtype,
                   const std::vector<float>& scales, const std::vector<float>& biases,
                   const Layout& layout) {
  const size_t element = dtype_size(dtype);
  auto storage = std::make_shared<std::vector<std::byte>>(
      static_cast<size_t>(layout.rows * layout.columns) * element);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < layout.rows; ++r) {
    CodeReader code(packed.bytes.data() + r * layout.row_bytes, layout.params.bits);
    std::byte* out = storage->data() + static_cast<size_t>(r * layout.columns) * element;
    for (int64_t j = 0; j < layout.columns; ++j) {
      const size_t group = static_cast<size_t>(r * layout.groups + j / layout.params.group_size);
      // One rounding, as Q4_1 decoding gives (scale * q is exact in float for 16-bit scales).
      const float value = std::fma(scales[group], static_cast<float>(code(j)), biases[group]);
      if (dtype == DType::F32) {
        std::memcpy(out + j * 4, &value, 4);
      } else {
        const uint16_t bits = dtype == DType::F16 ? f32_to_f16(value) : f32_to_bf16(value);
        std::memcpy(out + j * 2, &bits, 2);
      }
    }
  }
  return owning_tensor(name, dtype, {layout.rows, layout.columns}, std::move(storage));
}

bool is_scale_dtype(DType dtype) {
  return dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F32;
}

}  // namespace

std::optional<MlxQuantParams> MlxQuantization::params_for(const std::string& module) const {
  auto it = modules.find(module);
  return it == modules.end() ? std::optional(defaults) : it->second;
}

std::optional<MlxQuantization> parse_mlx_quantization(const nlohmann::json& config,
                                                      const std::string& source) {
  if (!config.is_object()) return std::nullopt;
  std::string key = "quantization";
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) {
    key = "quantization_config";
    it = config.find(key);
    if (it == config.end() || it->is_null()) return std::nullopt;
    // transformers' quantization_config (gptq, awq, bitsandbytes, ...) names its method; mlx-lm
    // copies its own section there without one.
    if (it->is_object()) {
      if (auto method = optional_string(*it, "quant_method", source)) {
        fail(
            "{}: {}.quant_method '{}' is not supported (flow2 reads MLX quantized checkpoints "
            "and GGUF files)",
            source, key, *method);
      }
    }
  }
  check(it->is_object(), "{}: '{}' is not an object", source, key);
  MlxQuantization quantization;
  quantization.key = key;
  quantization.defaults = parse_params(*it, MlxQuantParams{}, key, source);
  for (const auto& [name, value] : it->items()) {
    const std::string where = key + "." + name;
    if (value.is_object()) {
      quantization.modules[name] = parse_params(value, quantization.defaults, where, source);
    } else if (value.is_boolean()) {
      quantization.modules[name] =
          value.get<bool>() ? std::optional(quantization.defaults) : std::nullopt;
    }
    // Other scalars (group_size, bits, mode, and fields of later mlx-lm versions) are not
    // module entries.
  }
  return quantization;
}

std::optional<MlxQuantization> read_mlx_quantization(const std::filesystem::path& directory) {
  const auto path = directory / "config.json";
  return parse_mlx_quantization(read_json_file(path), path.string());
}

HostTensor mlx_dequantized_weight(const std::string& name, const HostTensor& packed,
                                  const HostTensor& scales, const HostTensor& biases,
                                  const MlxQuantParams& params, const std::string& source) {
  check(packed.dtype == DType::U32 && packed.shape.size() == 2,
        "{}: tensor '{}' is {} {}; a quantized MLX weight is U32 [out, in * bits / 32]", source,
        packed.name, dtype_name(packed.dtype), shape_string(packed.shape));
  for (const HostTensor* tensor : {&scales, &biases}) {
    check(is_scale_dtype(tensor->dtype) && tensor->shape.size() == 2 &&
              tensor->shape[0] == packed.shape[0],
          "{}: tensor '{}' is {} {}, expected F16, BF16 or F32 [{}, groups]", source, tensor->name,
          dtype_name(tensor->dtype), shape_string(tensor->shape), packed.shape[0]);
  }
  check(biases.shape == scales.shape, "{}: tensor '{}' has shape {} but '{}' has {}", source,
        biases.name, shape_string(biases.shape), scales.name, shape_string(scales.shape));
  Layout layout{packed.shape[0], scales.shape[1] * params.group_size, scales.shape[1], params,
                static_cast<size_t>(packed.shape[1]) * 4};
  check(packed.shape[1] * 32 == layout.columns * params.bits,
        "{}: tensor '{}' has {} uint32 words a row, but {} groups of {} at {} bits (config.json "
        "quantization for this layer) need {}",
        source, packed.name, packed.shape[1], layout.groups, params.group_size, params.bits,
        static_cast<double>(layout.columns * params.bits) / 32);
  const std::vector<float> scale_values = scales.to_f32();
  const std::vector<float> bias_values = biases.to_f32();
  if (params.bits <= 4 && params.group_size % kQ4Block == 0 &&
      f16_represents(scale_values, bias_values, params.bits)) {
    return to_q4_1(name, packed, scale_values, bias_values, layout);
  }
  return decoded(name, packed, scales.dtype, scale_values, bias_values, layout);
}

void unpack_mlx_weights(WeightStore& store, const std::optional<MlxQuantization>& quantization) {
  std::vector<std::string> modules;
  for (const auto& [name, tensor] : store.tensors()) {
    if (name.ends_with(".scales")) modules.push_back(name.substr(0, name.size() - 7));
  }
  for (const std::string& module : modules) {
    const std::string weight_name = module + ".weight";
    const std::string scales_name = module + ".scales";
    const std::string biases_name = module + ".biases";
    const std::string file = store.file_of(scales_name);
    const HostTensor* weight = store.find(weight_name);
    check(weight != nullptr, "{}: tensor '{}' has no '{}' beside it", file, scales_name,
          weight_name);
    check(quantization.has_value(),
          "{}: tensor '{}' is quantized ('{}' is present) but config.json has no 'quantization'",
          file, weight_name, scales_name);
    const HostTensor* biases = store.find(biases_name);
    check(biases != nullptr,
          "{}: missing tensor '{}' (MLX affine quantization stores a bias per group beside "
          "'{}'; other modes are not supported)",
          file, biases_name, scales_name);
    auto params = quantization->params_for(module);
    check(params.has_value(),
          "{}: tensor '{}' is present but config.json {}.{} says the layer is not quantized", file,
          scales_name, quantization->key, module);
    HostTensor unpacked = mlx_dequantized_weight(weight_name, *weight, store.get(scales_name),
                                                 *biases, *params, store.file_of(weight_name));
    store.replace(std::move(unpacked));
    store.remove(scales_name);
    store.remove(biases_name);
  }
  if (!quantization) return;
  for (const auto& [name, tensor] : store.tensors()) {
    check(tensor.dtype != DType::U32 || !name.ends_with(".weight"),
          "{}: tensor '{}' is U32 (quantized) but '{}.scales' is missing", store.file_of(name),
          name, name.substr(0, name.size() - 7));
  }
}

}  // namespace flow2
