// Matrix products through BLAS: out = x * W^T (+ bias), W stored [N, K] like a Linear layer.
//
// flow2 splits the N output columns over its own OpenMP threads and runs single-threaded sgemm
// on each slice. BLAS's own threads would compete with OpenMP's spinning threads (with the
// pthread build of OpenBLAS this made decoding many times slower); this way there is one pool.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "backend/cpu/cpu_backend.h"
#include "flow2/error.h"

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_parallel();  // 0: sequential, 1: pthreads, 2: OpenMP

namespace flow2 {
namespace {

void use_single_threaded_blas() {
  static std::once_flag once;
  // The OpenMP build runs single-threaded inside a parallel region by itself, and its
  // set_num_threads would shrink flow2's OpenMP pool too.
  std::call_once(once, [] {
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);
  });
}

}  // namespace

void CpuBackend::matmul(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  check(weight.dtype() == DType::F32, "matmul: unsupported weight dtype {}",
        dtype_name(weight.dtype()));
  const int64_t m = x.rows();
  const int64_t k = x.cols();
  const int64_t n = weight.rows();
  check(weight.cols() == k && out.rows() == m && out.cols() == n,
        "matmul: shapes {} x {}^T -> {} do not agree", shape_string(x.shape()),
        shape_string(weight.shape()), shape_string(out.shape()));
  check(!bias || bias->numel() == n, "matmul: bias has {} elements, expected {}",
        bias ? bias->numel() : 0, n);
  if (m == 0 || n == 0) return;
  use_single_threaded_blas();
  float* result = out.data_as<float>();
  const float* input = x.data_as<float>();
  const float* weights = weight.data_as<float>();
  const float* bias_values = bias ? bias->data_as<float>() : nullptr;

  // Slices of at least 16 columns, at most one per thread; small products run on one thread.
  const int64_t work = m * n * std::max<int64_t>(k, 1);
  const int threads = work < 8 * kMinParallelElements ? 1 : omp_get_max_threads();
  const int64_t slice = std::max<int64_t>(16, (n + threads - 1) / threads + 15) / 16 * 16;
  const int64_t slices = (n + slice - 1) / slice;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t s = 0; s < slices; ++s) {
    const int64_t first = s * slice;
    const int64_t width = std::min(slice, n - first);
    float beta = 0.0f;
    if (bias_values) {
      // BLAS adds beta * C: start C as the bias broadcast over rows.
      for (int64_t row = 0; row < m; ++row) {
        std::memcpy(result + row * n + first, bias_values + first, width * sizeof(float));
      }
      beta = 1.0f;
    }
    if (k == 0) {
      if (!bias_values) {
        for (int64_t row = 0; row < m; ++row) std::fill_n(result + row * n + first, width, 0.0f);
      }
      continue;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                static_cast<int>(width), static_cast<int>(k), 1.0f, input, static_cast<int>(k),
                weights + first * k, static_cast<int>(k), beta, result + first,
                static_cast<int>(n));
  }
}

}  // namespace flow2
