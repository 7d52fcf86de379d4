// Matrix products through BLAS: out = x * W^T (+ bias), W stored [N, K] like a Linear layer.
#include <cblas.h>

#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "flow2/error.h"

namespace flow2 {

void CpuBackend::matmul(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  check(weight.dtype() == DType::F32, "matmul: unsupported weight dtype {}",
        dtype_name(weight.dtype()));
  const int64_t m = x.rows();
  const int64_t k = x.cols();
  const int64_t n = weight.rows();
  check(weight.cols() == k && out.rows() == m && out.cols() == n,
        "matmul: shapes {} x {}^T -> {} do not agree", shape_string(x.shape()),
        shape_string(weight.shape()), shape_string(out.shape()));
  if (m == 0 || n == 0) return;
  float* result = out.data_as<float>();
  float beta = 0.0f;
  if (bias) {
    check(bias->numel() == n, "matmul: bias has {} elements, expected {}", bias->numel(), n);
    // BLAS adds beta * C: start C as the bias broadcast over rows.
    for (int64_t row = 0; row < m; ++row) {
      std::memcpy(result + row * n, bias->data_as<float>(), n * sizeof(float));
    }
    beta = 1.0f;
  }
  if (k == 0) {
    if (!bias) std::memset(result, 0, static_cast<size_t>(m * n) * sizeof(float));
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x.data_as<float>(), static_cast<int>(k),
              weight.data_as<float>(), static_cast<int>(k), beta, result, static_cast<int>(n));
}

}  // namespace flow2
