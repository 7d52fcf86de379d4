// Programmatic dependent launch (cuda_launch.cuh): the rule that turns it on, and decoding with
// it on and off giving the same logits and tokens bit for bit, op by op and replayed as graphs
// (whose capture must keep the programmatic edges). Built with the toolkit; the GPU tests skip
// without a GPU.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_launch.h"
#include "backend_list.h"
#include "flow2/gguf_export.h"
#include "flow2/model.h"
#include "random_checkpoint.h"
#include "test_support.h"

namespace flow2 {
namespace {

TEST(CudaProgrammaticLaunch, NeedsComputeCapability9KernelsFor9AndNoOptOut) {
  EXPECT_TRUE(cuda::programmatic_launch_allowed(9, 90, nullptr));
  EXPECT_TRUE(cuda::programmatic_launch_allowed(10, 100, "1"));
  EXPECT_FALSE(cuda::programmatic_launch_allowed(9, 90, "0"));  // FLOW2_CUDA_PDL=0
  EXPECT_FALSE(cuda::programmatic_launch_allowed(8, 80, nullptr));
  // Kernels JIT-compiled from older PTX on a newer GPU have no grid dependency wait.
  EXPECT_FALSE(cuda::programmatic_launch_allowed(9, 80, nullptr));
}

// PDL forced on or off for the launches made while it lives.
class ProgrammaticLaunch {
 public:
  explicit ProgrammaticLaunch(bool enabled) { cuda::override_programmatic_launch(enabled); }
  ~ProgrammaticLaunch() { cuda::override_programmatic_launch(std::nullopt); }
  ProgrammaticLaunch(const ProgrammaticLaunch&) = delete;
  ProgrammaticLaunch& operator=(const ProgrammaticLaunch&) = delete;
};

struct Decoded {
  std::vector<std::vector<float>> logits;  // the prompt's last rows, then each step's
  std::vector<std::vector<int32_t>> tokens;
  bool programmatic = false;  // whether launches carried the attribute
  int64_t captures = 0, replays = 0, programmatic_edges = 0;
};

// A prompt of `batch` rows of 20 tokens (16 or more: the tensor-core prompt attention), then
// `steps` single tokens per row, on a fresh backend with PDL and graphs as asked.
Decoded decode(const std::filesystem::path& checkpoint, bool pdl, bool graphs, int64_t batch,
               int64_t steps) {
  ProgrammaticLaunch setting(pdl);
  ::setenv("FLOW2_CUDA_GRAPHS", graphs ? "1" : "0", 1);
  auto backend = make_backend("cuda");
  ::unsetenv("FLOW2_CUDA_GRAPHS");
  auto model = Model::load(open_checkpoint(checkpoint), *backend);
  const int64_t length = 20;
  KVCache cache = model->make_cache(batch, length + steps);
  std::vector<int32_t> prompt;
  for (int64_t i = 0; i < length * batch; ++i)
    prompt.push_back(static_cast<int32_t>(3 + 5 * i % 97));
  Decoded result;
  Tensor logits = model->forward(prompt, batch, cache, LogitRows::Last);
  result.logits.push_back(backend->to_host(logits));
  result.tokens.push_back(backend->argmax_rows(logits));
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<int32_t> next;
    for (int64_t b = 0; b < batch; ++b) next.push_back(static_cast<int32_t>(7 + 11 * step + b));
    logits = model->forward(next, batch, cache, LogitRows::Last);
    result.logits.push_back(backend->to_host(logits));
    result.tokens.push_back(backend->argmax_rows(logits));
  }
  result.programmatic = cuda::programmatic_launch_enabled();
  const auto& step_graphs = dynamic_cast<CudaBackend&>(*backend).context().graphs();
  result.captures = step_graphs.captures();
  result.replays = step_graphs.replays();
  result.programmatic_edges = step_graphs.programmatic_edges();
  return result;
}

// Index of the first value whose bits differ (0 for vectors of different sizes), or -1.
int64_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<int64_t>(i);
  }
  return -1;
}

struct Case {
  std::string fixture;
  std::optional<DType> gguf;  // exported to GGUF in this dtype first (quantized GEMVs)
};

void PrintTo(const Case& value, std::ostream* out) {
  *out << value.fixture;
  if (value.gguf) *out << " as " << dtype_name(*value.gguf) << " GGUF";
}

// The fixture of a Case: a tiny model's directory, or for "random-llama-256" a Llama with rows of
// 256 written into `dir` (random weights, tiny-llama's tokenizer): its 4-bit GEMVs stage x as
// int16 (cuda_int16_x.cuh), which rows of 64 do not.
std::filesystem::path fixture_path(const std::string& fixture, const std::filesystem::path& dir) {
  if (fixture != "random-llama-256") return testing::model_path(fixture);
  const auto path = dir / fixture;
  bench::write_random_llama(path, {fixture, 320, 256, 512, 2, 4, 2, false}, 7);
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(testing::model_path("tiny-llama") / file, path / file);
  }
  return path;
}

class CudaProgrammaticDecode : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (auto reason = testing::skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
  }
};

TEST_P(CudaProgrammaticDecode, LogitsEqualWithoutIt) {
  testing::TempDir dir;
  std::filesystem::path checkpoint = fixture_path(GetParam().fixture, dir.path());
  if (GetParam().gguf) {
    const auto path = dir / "model.gguf";
    export_gguf(open_checkpoint(checkpoint), path, {*GetParam().gguf});
    checkpoint = path;
  }
  const int64_t steps = 12;
  for (bool graphs : {false, true}) {
    for (int64_t batch : {1, 3}) {
      const Decoded on = decode(checkpoint, true, graphs, batch, steps);
      const Decoded off = decode(checkpoint, false, graphs, batch, steps);
      const std::string where =
          (graphs ? "graphs, batch " : "op by op, batch ") + std::to_string(batch);
      EXPECT_FALSE(off.programmatic) << where;
      if (!on.programmatic) {
        std::cout << "PDL is not available on this device; both runs launched without it\n";
      }
      ASSERT_EQ(on.logits.size(), off.logits.size()) << where;
      for (size_t i = 0; i < on.logits.size(); ++i) {
        EXPECT_EQ(first_difference(on.logits[i], off.logits[i]), -1) << where << ", step " << i;
        EXPECT_EQ(on.tokens[i], off.tokens[i]) << where << ", step " << i;
      }
      if (graphs) {
        // Capture kept the launches' attribute as programmatic edges, and the graphs replayed.
        EXPECT_EQ(on.replays, steps - 1) << where;
        EXPECT_EQ(off.replays, steps - 1) << where;
        if (on.programmatic) {
          EXPECT_GT(on.programmatic_edges, 0) << where;
        }
        EXPECT_EQ(off.programmatic_edges, 0) << where;
      } else {
        EXPECT_EQ(on.captures, 0) << where;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, CudaProgrammaticDecode,
    ::testing::Values(Case{"tiny-llama", std::nullopt}, Case{"tiny-llama-bf16", std::nullopt},
                      Case{"tiny-gpt2", std::nullopt}, Case{"tiny-mistral-window", std::nullopt},
                      Case{"tiny-llama", DType::Q4_0}, Case{"tiny-llama", DType::Q8_0},
                      Case{"random-llama-256", DType::Q4_0}, Case{"random-llama-256", DType::Q4_K}),
    [](const auto& info) {
      std::string name = info.param.fixture;
      if (info.param.gguf) {
        name += "_";
        name += dtype_name(*info.param.gguf);
      }
      for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

}  // namespace
}  // namespace flow2
