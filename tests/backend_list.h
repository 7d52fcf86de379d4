// The backends the op and model tests run on.
#pragma once

#include <string>
#include <vector>

#include "flow2/build_info.h"

namespace flow2::testing {

// Backends with every op, training ops included.
inline std::vector<std::string> available_backends() {
  std::vector<std::string> names = {"cpu"};
  return names;
}

// Backends with every inference op: the CPU, and CUDA in builds with the toolkit (its tests skip
// with a message on machines without a GPU; see skip_reason).
inline std::vector<std::string> inference_backends() {
  std::vector<std::string> names = {"cpu"};
  if (built_with_cuda()) names.push_back("cuda");
  return names;
}

// Why a listed backend cannot run here; empty when it can.
inline std::string skip_reason(const std::string& backend) {
  if (backend == "cuda" && cuda_device_count() == 0) return "no CUDA device on this machine";
  return "";
}

// A backend's rounding in matrix products: CUDA runs prompts (more than 4 rows of x) on bf16/f16
// tensor cores for 16-bit and block-quantized weights, x rounded to the weight's type (float32
// accumulation); each product then moves by up to this much of sum |x_i w_i|.
inline double product_relative_error(const std::string& backend, bool sixteen_bit_weights,
                                     int64_t rows) {
  if (backend != "cuda" || !sixteen_bit_weights || rows <= 4) return 0.0;
  return 1.0 / 128;  // 2^-8 for x plus 2^-8 for a weight rounded from blocks to bf16
}

}  // namespace flow2::testing
