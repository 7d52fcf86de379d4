// A test fixture with the CUDA backend beside the CPU's, for tests that hold CUDA ops to the
// CPU's results or to each other; it skips, saying why, where the build has no CUDA toolkit or
// the machine no usable GPU.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "backend_list.h"
#include "flow2/backend.h"

namespace flow2::testing {

class CudaAgainstCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
    if (auto reason = skip_reason("cuda"); !reason.empty()) GTEST_SKIP() << reason;
    cuda_ = make_backend("cuda");
    cpu_ = make_backend("cpu");
  }

  std::unique_ptr<Backend> cuda_, cpu_;
};

}  // namespace flow2::testing
