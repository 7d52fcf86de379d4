// dX = dY * W for a frozen weight W [N, K] of any dtype: the gradient that flows through a
// Linear layer to its input. The rows of dX are split over the OpenMP threads; each thread
// decodes W (16-bit or quantized) a tile of rows at a time and feeds the tile to sgemm. Every
// thread decoding the whole weight costs ~threads / M of the multiply, little for batches.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "flow2/error.h"

namespace flow2 {
namespace {

constexpr int64_t kTileRows = 256;  // a deep enough inner dimension for sgemm

}  // namespace

void CpuBackend::matmul_input_grad(Tensor& dx, const Tensor& dy, const Tensor& weight,
                                   bool accumulate) {
  const int64_t m = dy.rows();
  const int64_t n = weight.rows();
  const int64_t k = weight.cols();
  check(dy.cols() == n && dx.rows() == m && dx.cols() == k,
        "matmul_input_grad: shapes {} x {} -> {} do not agree", shape_string(dy.shape()),
        shape_string(weight.shape()), shape_string(dx.shape()));
  check(weight.dtype() == DType::F32 || weight.dtype() == DType::F16 ||
            weight.dtype() == DType::BF16 || is_quantized(weight.dtype()),
        "matmul_input_grad: unsupported weight dtype {}", dtype_name(weight.dtype()));
  if (m == 0 || k == 0) return;
  float* result = dx.data_as<float>();
  if (n == 0) {
    if (!accumulate) std::fill_n(result, m * k, 0.0f);
    return;
  }
  const float* grad = dy.data_as<float>();
  const int64_t work = m * n * k;
  const int threads = work < 8 * kMinParallelElements ? 1 : omp_get_max_threads();
  const int64_t slice = std::max<int64_t>(8, (m + threads - 1) / threads);
  const int64_t slices = (m + slice - 1) / slice;
  const float beta = accumulate ? 1.0f : 0.0f;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t s = 0; s < slices; ++s) {
    const int64_t first = s * slice;
    const int rows = static_cast<int>(std::min(slice, m - first));
    if (weight.dtype() == DType::F32) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, static_cast<int>(k),
                  static_cast<int>(n), 1.0f, grad + first * n, static_cast<int>(n),
                  weight.data_as<float>(), static_cast<int>(k), beta, result + first * k,
                  static_cast<int>(k));
      continue;
    }
    thread_local std::vector<float> tile;
    const uint64_t row_bytes = dtype_bytes(weight.dtype(), static_cast<uint64_t>(k));
    const auto* bytes = static_cast<const std::byte*>(weight.data());
    for (int64_t begin = 0; begin < n; begin += kTileRows) {
      const int64_t count = std::min(kTileRows, n - begin);
      tile.resize(static_cast<size_t>(count * k));
      for (int64_t r = 0; r < count; ++r) {
        convert_to_f32(weight.dtype(), bytes + static_cast<uint64_t>(begin + r) * row_bytes,
                       static_cast<size_t>(k), tile.data() + r * k);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, static_cast<int>(k),
                  static_cast<int>(count), 1.0f, grad + first * n + begin, static_cast<int>(n),
                  tile.data(), static_cast<int>(k), begin == 0 ? beta : 1.0f, result + first * k,
                  static_cast<int>(k));
    }
  }
}

}  // namespace flow2
