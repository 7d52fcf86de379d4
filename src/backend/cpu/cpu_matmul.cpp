// Matrix products: out = x * W^T (+ bias), W stored [N, K] like a Linear layer.
//
// flow2 splits the N output columns over its own OpenMP threads and runs single-threaded
// kernels on each slice. BLAS's own threads would compete with OpenMP's spinning threads (with
// the pthread build of OpenBLAS this made decoding many times slower); this way there is one pool.
//
// float32 weights go to sgemm directly. 16-bit and block-quantized weights are decoded a tile of
// rows at a time into a per-thread buffer: for a single row of x (decoding a token) the tile is
// consumed by dot products right away, so the weights cross the memory bus in their compact form;
// for many rows (a prompt) the decoded tile feeds sgemm and its cost is shared by all rows.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"
#include "flow2/error.h"
#include "quant/int16_activations.h"
#include "quant/integer_dot.h"

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

// Rows of x below which a decoded tile is used by dot products rather than by sgemm.
constexpr int64_t kDotRows = 4;
constexpr int64_t kTileRows = 64;

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// out[:, first:first+width] for weights that need decoding. With `activations` (x quantized to
// int16 blocks, for few rows of x) the packed blocks are read by integer dot products.
void decoded_slice(float* result, const float* input, const Int16Activations* activations,
                   const Tensor& weight, int64_t m, int64_t n, int64_t k, int64_t first,
                   int64_t width, float beta) {
  thread_local std::vector<float> tile;
  const uint64_t row_bytes = dtype_bytes(weight.dtype(), static_cast<uint64_t>(k));
  const auto* rows = static_cast<const std::byte*>(weight.data());
  if (activations) {
    for (int64_t row = 0; row < m; ++row) {
      const Int16Row x = activations->row(static_cast<size_t>(row));
      for (int64_t r = first; r < first + width; ++r) {
        const float value = integer_row_dot(
            weight.dtype(), rows + static_cast<uint64_t>(r) * row_bytes, x, static_cast<size_t>(k));
        float& target = result[row * n + r];
        target = beta * target + value;
      }
    }
    return;
  }
  for (int64_t begin = first; begin < first + width; begin += kTileRows) {
    const int64_t count = std::min(kTileRows, first + width - begin);
    tile.resize(static_cast<size_t>(count * k));
    for (int64_t r = 0; r < count; ++r) {
      convert_to_f32(weight.dtype(), rows + static_cast<uint64_t>(begin + r) * row_bytes,
                     static_cast<size_t>(k), tile.data() + r * k);
    }
    if (m <= kDotRows) {
      for (int64_t row = 0; row < m; ++row) {
        for (int64_t r = 0; r < count; ++r) {
          float& target = result[row * n + begin + r];
          target = beta * target + dot(input + row * k, tile.data() + r * k, k);
        }
      }
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                  static_cast<int>(count), static_cast<int>(k), 1.0f, input, static_cast<int>(k),
                  tile.data(), static_cast<int>(k), beta, result + begin, static_cast<int>(n));
    }
  }
}

}  // namespace

void CpuBackend::matmul(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const bool decode = weight.dtype() != DType::F32;
  check(!decode || weight.dtype() == DType::F16 || weight.dtype() == DType::BF16 ||
            is_quantized(weight.dtype()),
        "matmul: unsupported weight dtype {}", dtype_name(weight.dtype()));
  const int64_t m = x.rows();
  const int64_t k = x.cols();
  const int64_t n = weight.rows();
  check_matmul(out, x, weight, bias);
  if (m == 0 || n == 0) return;
  use_single_threaded_blas();
  float* result = out.data_as<float>();
  const float* input = x.data_as<float>();
  const float* bias_values = bias ? bias->data_as<float>() : nullptr;
  // Decoding a token: x becomes int16 blocks once, shared by all threads.
  thread_local Int16Activations quantized_input;
  const Int16Activations* activations = nullptr;
  if (m <= kDotRows && has_integer_dot(weight.dtype())) {
    quantized_input.quantize(input, static_cast<size_t>(m), static_cast<size_t>(k));
    activations = &quantized_input;
  }

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
      // The kernels add beta * C: start C as the bias broadcast over rows.
      for (int64_t row = 0; row < m; ++row) {
        std::memcpy(result + row * n + first, bias_values + first, width * sizeof(float));
      }
      beta = 1.0f;
    } else if (decode && m <= kDotRows) {
      for (int64_t row = 0; row < m; ++row) std::fill_n(result + row * n + first, width, 0.0f);
    }
    if (k == 0) {
      if (!bias_values) {
        for (int64_t row = 0; row < m; ++row) std::fill_n(result + row * n + first, width, 0.0f);
      }
      continue;
    }
    if (decode) {
      decoded_slice(result, input, activations, weight, m, n, k, first, width, beta);
      continue;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                static_cast<int>(width), static_cast<int>(k), 1.0f, input, static_cast<int>(k),
                weight.data_as<float>() + first * k, static_cast<int>(k), beta, result + first,
                static_cast<int>(n));
  }
}

}  // namespace flow2
