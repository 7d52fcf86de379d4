// Backend::argmax_rows (greedy decoding's choice on the device) against std::max_element on
// random rows, with planted ties (the first maximum wins) and all-negative rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend_list.h"
#include "flow2/backend.h"

namespace flow2 {
namespace {

class ArgmaxRows : public ::testing::TestWithParam<std::string> {};

TEST_P(ArgmaxRows, FindsEachRowsFirstLargestValue) {
  if (auto reason = testing::skip_reason(GetParam()); !reason.empty()) GTEST_SKIP() << reason;
  auto backend = make_backend(GetParam());
  std::mt19937 random(3);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (int64_t width : {1, 7, 1000, 128256}) {
    const int64_t rows = 5;
    std::vector<float> values(static_cast<size_t>(rows * width));
    for (float& v : values) v = normal(random);
    if (width > 10) {
      // Row 1: the maximum twice, the later copy first in memory order after the earlier one.
      const float top = 100.0f;
      values[1 * width + 3] = top;
      values[1 * width + width - 2] = top;
      // Row 2: every value negative.
      for (int64_t j = 0; j < width; ++j)
        values[2 * width + j] = -1.0f - std::abs(values[2 * width + j]);
    }
    std::vector<int32_t> expected;
    for (int64_t r = 0; r < rows; ++r) {
      auto begin = values.begin() + r * width;
      expected.push_back(static_cast<int32_t>(std::max_element(begin, begin + width) - begin));
    }
    auto actual = backend->argmax_rows(backend->from_host(values, {rows, width}));
    EXPECT_EQ(actual, expected) << "width " << width;
    if (width > 10) {
      EXPECT_EQ(actual[1], 3);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ArgmaxRows, ::testing::ValuesIn(testing::inference_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flow2
