// Shared helpers for the tests: test data paths, temporary directories, random inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace flow2::testing {

inline std::filesystem::path data_path(const std::string& relative) {
  return std::filesystem::path(FLOW2_TEST_DATA) / relative;
}

inline std::filesystem::path model_path(const std::string& name) {
  return data_path("models/" + name);
}

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device device;
    path_ = std::filesystem::temp_directory_path() /
            ("flow2-test-" + std::to_string(device()) + std::to_string(device()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::vector<float> random_values(size_t count, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (auto& value : values) value = normal(rng);
  return values;
}

inline double max_abs_difference(std::span<const float> a, std::span<const float> b) {
  double worst = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  }
  return worst;
}

// sum over j of |x[r, j] * w[o, j]| for every row r of x [rows, k] and row o of w [n, k]
// (row-major), as [rows, n]: a relative error e in each x or w moves the product x w^T at (r, o)
// by at most e times it.
inline std::vector<double> abs_product_sums(std::span<const float> x, std::span<const float> w,
                                            int64_t k) {
  std::vector<double> sums;
  for (size_t r = 0; r + static_cast<size_t>(k) <= x.size(); r += static_cast<size_t>(k)) {
    for (size_t o = 0; o + static_cast<size_t>(k) <= w.size(); o += static_cast<size_t>(k)) {
      double sum = 0.0;
      for (size_t j = 0; j < static_cast<size_t>(k); ++j) sum += std::abs(x[r + j] * w[o + j]);
      sums.push_back(sum);
    }
  }
  return sums;
}

// The largest of abs_product_sums.
inline double largest_abs_product_sum(std::span<const float> x, std::span<const float> w,
                                      int64_t k) {
  const std::vector<double> sums = abs_product_sums(x, w, k);
  return sums.empty() ? 0.0 : *std::max_element(sums.begin(), sums.end());
}

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& contents);
// Copies a model directory so that a test can damage the copy.
void copy_directory(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace flow2::testing
