// CUDA availability and device selection: built when the toolkit exists; device tests skip
// without a GPU. (The ops and fixture models run on CUDA in test_backend_ops / test_models.)
#include <gtest/gtest.h>

#include "flow2/backend.h"
#include "flow2/build_info.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

TEST(Cuda, DeviceCountIsSane) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  EXPECT_GT(cuda_device_count(), 0);
}

std::string error_of(const std::string& device) {
  try {
    make_backend(device);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(Cuda, AskingForCudaWithoutAGpuSaysWhy) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a CUDA device";
  const std::string expected = built_with_cuda() ? "no usable GPU" : "built without the CUDA";
  EXPECT_NE(error_of("cuda").find(expected), std::string::npos) << error_of("cuda");
  EXPECT_NE(error_of("cuda:1").find(expected), std::string::npos);
}

TEST(Cuda, DeviceNamesAreChecked) {
  EXPECT_NE(error_of("cuda:x").find("not cuda or cuda:N"), std::string::npos);
  EXPECT_NE(error_of("gpu").find("unknown device"), std::string::npos);
  if (cuda_device_count() > 0) {
    EXPECT_NE(error_of("cuda:999").find("this machine has"), std::string::npos);
  }
}

TEST(Cuda, AutoPicksCudaWhenPresent) {
  EXPECT_EQ(make_backend("auto")->name(), cuda_device_count() > 0 ? "cuda" : "cpu");
}

}  // namespace
}  // namespace flow2
