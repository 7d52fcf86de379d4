// CUDA availability: built when the toolkit exists; device tests skip without a GPU.
#include <gtest/gtest.h>

#include "flow2/build_info.h"

namespace flow2 {
namespace {

TEST(Cuda, DeviceCountIsSane) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  EXPECT_GT(cuda_device_count(), 0);
}

}  // namespace
}  // namespace flow2
