// Weights staged to the GPU (backend/cuda/cuda_upload.h): every dtype arrives as the CPU decodes
// it, across chunk boundaries, staged or not; ops queued right after an upload see the weight
// while other copies are still in flight; the byte counts of the memory check are those the
// uploads take, and a model too large fails before any upload with both numbers (the CLI with
// exit status 1); flow2 bench reports the GPU's peak memory. Built with the toolkit; skips
// without a GPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_upload.h"
#include "backend_list.h"
#include "cli_runner.h"
#include "flow2/error.h"
#include "flow2/model.h"
#include "flow2/quant.h"
#include "flow2/weight_store.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

// Sets environment variables for the backends made while it lives (the uploader reads them at
// its first upload).
class ScopedEnvironment {
 public:
  explicit ScopedEnvironment(std::vector<std::pair<std::string, std::string>> values)
      : values_(std::move(values)) {
    for (const auto& [name, value] : values_) ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnvironment() {
    for (const auto& [name, value] : values_) ::unsetenv(name.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

class CudaUpload : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  }
};

HostTensor owned(std::string name, DType dtype, Shape shape, std::vector<std::byte> bytes) {
  auto storage = std::make_shared<std::vector<std::byte>>(std::move(bytes));
  return HostTensor{std::move(name), dtype, std::move(shape), *storage, storage};
}

// Random values of `shape` stored as `dtype` (encoded the way checkpoints hold it).
HostTensor random_weight(DType dtype, Shape shape, uint64_t seed) {
  const std::vector<float> values =
      testing::random_values(static_cast<size_t>(shape_numel(shape)), seed, 0.5f);
  std::vector<std::byte> bytes(dtype_bytes(dtype, values.size()));
  if (dtype == DType::F32) {
    std::memcpy(bytes.data(), values.data(), bytes.size());
  } else if (dtype == DType::BF16 || dtype == DType::F16) {
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t bits = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(bytes.data() + 2 * i, &bits, 2);
    }
  } else {
    quantize_blocks(dtype, values.data(), values.size(), bytes.data());
  }
  return owned(std::string(dtype_name(dtype)), dtype, std::move(shape), std::move(bytes));
}

// What to_host gives back for an uploaded `host`: its float32 values, rounded to bf16 where the
// device holds a converted bf16 matrix.
std::vector<float> expected_values(const HostTensor& host) {
  std::vector<float> values = host.to_f32();
  if (cuda::device_weight_dtype(host) == DType::BF16 && host.dtype != DType::BF16) {
    for (float& value : values) value = bf16_to_f32(f32_to_bf16(value));
  }
  return values;
}

TEST_F(CudaUpload, EveryDtypeArrivesAsTheCpuDecodesIt) {
  // 4 MB buffers: the larger matrices take several chunks of several pieces each.
  for (const char* staging : {"1", "0"}) {
    ScopedEnvironment environment({{"FLOW2_UPLOAD_STAGING", staging},
                                   {"FLOW2_UPLOAD_BUFFER_MB", "4"},
                                   {"FLOW2_UPLOAD_BUFFERS", "2"},
                                   {"FLOW2_UPLOAD_THREADS", "3"}});
    auto backend = make_backend("cuda");
    uint64_t seed = 0;
    for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                        DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      for (Shape shape : {Shape{3, 256}, Shape{1000, 768}, Shape{4096, 1024}, Shape{768}}) {
        if (shape.size() == 1 && is_quantized(dtype)) continue;
        const HostTensor host = random_weight(dtype, shape, ++seed);
        const Tensor tensor = backend->upload_weight(host);
        EXPECT_EQ(tensor.dtype(), cuda::device_weight_dtype(host));
        // Block matrices may be repacked with padding: their nbytes() is their dtype's size.
        if (!is_quantized(tensor.dtype())) {
          EXPECT_EQ(tensor.nbytes(), cuda::device_weight_bytes(host));
        }
        EXPECT_EQ(tensor.shape(), shape);
        EXPECT_TRUE(backend->to_host(tensor) == expected_values(host))
            << dtype_name(dtype) << " " << shape_string(shape) << " staging=" << staging;
      }
    }
  }
}

TEST_F(CudaUpload, OpsQueuedRightAfterAnUploadSeeTheWeight) {
  ScopedEnvironment environment({{"FLOW2_UPLOAD_BUFFER_MB", "8"}, {"FLOW2_UPLOAD_THREADS", "4"}});
  auto gpu = make_backend("cuda");
  auto cpu = make_backend("cpu");
  const std::vector<float> row = testing::random_values(1024, 99);
  const Tensor x_gpu = gpu->from_host(row, {1, 1024});
  const Tensor x_cpu = cpu->from_host(row, {1, 1024});
  for (uint64_t round = 0; round < 4; ++round) {
    // A large weight first, so that the small one's copies queue behind copies in flight.
    const Tensor filler =
        gpu->upload_weight(random_weight(DType::BF16, {4096, 4096}, 1000 + round));
    const HostTensor host = random_weight(DType::F32, {512, 1024}, round);
    const Tensor weight = gpu->upload_weight(host);
    Tensor out_gpu = gpu->empty({1, 512});
    gpu->matmul(out_gpu, x_gpu, weight, nullptr);
    Tensor out_cpu = cpu->empty({1, 512});
    cpu->matmul(out_cpu, x_cpu, cpu->upload_weight(host), nullptr);
    EXPECT_LE(testing::max_abs_difference(gpu->to_host(out_gpu), cpu->to_host(out_cpu)), 1e-3)
        << "round " << round;
  }
}

TEST_F(CudaUpload, ModelsCheckTheirWeightsAgainstFreeMemory) {
  auto backend = make_backend("cuda");
  // The memory check counts what the uploads take.
  const Checkpoint checkpoint = open_checkpoint(testing::model_path("tiny-llama-bf16"));
  uint64_t uploaded = 0;
  for (const auto& [name, host] : checkpoint.weights.tensors()) {
    uploaded += backend->upload_weight(host).nbytes();
  }
  EXPECT_EQ(cuda::device_weights_bytes(checkpoint.weights), uploaded);
  EXPECT_NO_THROW(backend->prepare_weights(checkpoint.weights));

  // Shapes alone decide: a terabyte of bf16 that no GPU has (its bytes are never read).
  WeightStore huge("huge");
  HostTensor tensor{
      "model.embed_tokens.weight", DType::BF16, {int64_t{1} << 20, int64_t{1} << 19}, {}, nullptr};
  huge.add(tensor, "huge.safetensors");
  try {
    backend->prepare_weights(huge);
    FAIL() << "a terabyte of weights fit";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("does not fit in GPU memory: its weights need 1099.51 GB"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("GB free of"), std::string::npos) << message;
  }
}

// A llama checkpoint of 1 layer whose embedding and head hold 800M rows of 64 bf16 values
// (205 GB): a sparse file, so it takes no disk space, and the header is all flow2 reads before
// the memory check.
void write_sparse_checkpoint(const std::filesystem::path& directory) {
  const int64_t vocab = 800'000'000, hidden = 64, inner = 160, kv = 32;
  json config =
      json::parse(testing::read_file(testing::model_path("tiny-llama-bf16") / "config.json"));
  config["vocab_size"] = vocab;
  config["num_hidden_layers"] = 1;
  testing::write_file(directory / "config.json", config.dump());
  const std::vector<std::pair<std::string, Shape>> tensors = {
      {"model.embed_tokens.weight", {vocab, hidden}},
      {"model.layers.0.input_layernorm.weight", {hidden}},
      {"model.layers.0.self_attn.q_proj.weight", {hidden, hidden}},
      {"model.layers.0.self_attn.k_proj.weight", {kv, hidden}},
      {"model.layers.0.self_attn.v_proj.weight", {kv, hidden}},
      {"model.layers.0.self_attn.o_proj.weight", {hidden, hidden}},
      {"model.layers.0.post_attention_layernorm.weight", {hidden}},
      {"model.layers.0.mlp.gate_proj.weight", {inner, hidden}},
      {"model.layers.0.mlp.up_proj.weight", {inner, hidden}},
      {"model.layers.0.mlp.down_proj.weight", {hidden, inner}},
      {"model.norm.weight", {hidden}},
      {"lm_head.weight", {vocab, hidden}},
  };
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    const uint64_t bytes = 2 * static_cast<uint64_t>(shape_numel(shape));
    header[name] = {
        {"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::filesystem::path file = directory / "model.safetensors";
  {
    std::ofstream out(file, std::ios::binary);
    const uint64_t length = text.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  std::filesystem::resize_file(file, 8 + text.size() + offset);
}

TEST_F(CudaUpload, TheCliSaysWhenAModelDoesNotFitAndExitsWith1) {
  testing::TempDir directory;
  write_sparse_checkpoint(directory.path());
  const auto result = testing::run_cli("generate --model " + directory.path().string() +
                                       " --device cuda --prompt-ids 1,2,3 --max-tokens 1");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("does not fit in GPU memory: its weights need 204.80 GB"),
            std::string::npos)
      << result.output;
}

TEST_F(CudaUpload, BenchReportsTheGpuPeak) {
  const auto result =
      testing::run_cli("bench --model " + testing::model_path("tiny-llama").string() +
                       " --device cuda --prompt-tokens 8 --gen-tokens 4 --reps 1 --json");
  ASSERT_EQ(result.status, 0) << result.output;
  const json out = json::parse(result.stdout_text);
  const json& peak = out["models"][0]["backends"][0]["gpu_peak_bytes"];
  ASSERT_TRUE(peak.is_number_integer()) << peak;
  EXPECT_GT(peak.get<int64_t>(), 0);
}

}  // namespace
}  // namespace flow2
