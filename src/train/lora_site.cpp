// The LoRA branch's products have rank r (4..64): single sgemm calls, small beside the frozen
// weight's. Dropout masks are a hash of (seed, site, element), so backward and gradient
// checkpointing regenerate the very mask of the forward without storing it.
#include "train/lora_site.h"

#include <cblas.h>

#include "flow2/error.h"

namespace flow2 {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

LoraSite::LoraSite(LoraModule& module, float scaling, float dropout, uint64_t id)
    : module_(module), scaling_(scaling), dropout_(dropout), id_(id) {
  check(module.in > 0 && module.out > 0 && !module.a.empty() &&
            module.a.size() % static_cast<size_t>(module.in) == 0,
        "LoRA module {}: A has {} values for {} inputs", module.name, module.a.size(), module.in);
  rank_ = static_cast<int64_t>(module.a.size()) / module.in;
  check(module.b.size() == static_cast<size_t>(module.out * rank_),
        "LoRA module {}: B has {} values, expected [{}, {}]", module.name, module.b.size(),
        module.out, rank_);
  check(dropout >= 0.0f && dropout < 1.0f, "LoRA dropout {} is outside [0, 1)", dropout);
  grad_a_.assign(module.a.size(), 0.0f);
  grad_b_.assign(module.b.size(), 0.0f);
}

const float* LoraSite::dropped(const Tensor& x, std::vector<float>& out, uint64_t seed,
                               bool train) const {
  if (!drops(train)) return x.data_as<float>();
  const int64_t count = x.numel();
  out.resize(static_cast<size_t>(count));
  const float keep_scale = 1.0f / (1.0f - dropout_);
  const uint64_t stream = splitmix64(seed ^ splitmix64(id_));
  const float* in = x.data_as<float>();
#pragma omp parallel for schedule(static) if (count >= (1 << 16))
  for (int64_t i = 0; i < count; ++i) {
    const double uniform =
        static_cast<double>(splitmix64(stream + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
    out[i] = uniform < dropout_ ? 0.0f : in[i] * keep_scale;
  }
  return out.data();
}

void LoraSite::project(const Tensor& x, Tensor& u, uint64_t seed, bool train) const {
  check(x.cols() == module_.in && u.rows() == x.rows() && u.cols() == rank_,
        "LoRA module {}: input {} does not fit", module_.name, shape_string(x.shape()));
  std::vector<float> buffer;
  const float* input = dropped(x, buffer, seed, train);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(x.rows()),
              static_cast<int>(rank_), static_cast<int>(module_.in), 1.0f, input,
              static_cast<int>(module_.in), module_.a.data(), static_cast<int>(module_.in), 0.0f,
              u.data_as<float>(), static_cast<int>(rank_));
}

void LoraSite::add_output(Tensor& y, const Tensor& u, int64_t first_row) const {
  const int64_t width = y.cols();
  check(first_row + width <= module_.out, "LoRA module {}: output rows beyond B", module_.name);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(y.rows()),
              static_cast<int>(width), static_cast<int>(rank_), scaling_, u.data_as<float>(),
              static_cast<int>(rank_), module_.b.data() + first_row * rank_,
              static_cast<int>(rank_), 1.0f, y.data_as<float>(), static_cast<int>(width));
}

void LoraSite::backward_output(const Tensor& dy, const Tensor& u, int64_t first_row, Tensor& du) {
  const int64_t width = dy.cols();
  const int rows = static_cast<int>(dy.rows());
  const int rank = static_cast<int>(rank_);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(width), rank, rows,
              scaling_, dy.data_as<float>(), static_cast<int>(width), u.data_as<float>(), rank,
              1.0f, grad_b_.data() + first_row * rank_, rank);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, rank, static_cast<int>(width),
              scaling_, dy.data_as<float>(), static_cast<int>(width),
              module_.b.data() + first_row * rank_, rank, 1.0f, du.data_as<float>(), rank);
}

void LoraSite::backward_input(const Tensor& x, const Tensor& du, Tensor* dx, uint64_t seed,
                              bool train) {
  const int rows = static_cast<int>(x.rows());
  const int in = static_cast<int>(module_.in);
  const int rank = static_cast<int>(rank_);
  std::vector<float> buffer;
  const float* input = dropped(x, buffer, seed, train);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rank, in, rows, 1.0f, du.data_as<float>(),
              rank, input, in, 1.0f, grad_a_.data(), in);
  if (!dx) return;
  if (!drops(train)) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, rank, 1.0f,
                du.data_as<float>(), rank, module_.a.data(), in, 1.0f, dx->data_as<float>(), in);
    return;
  }
  // dropout(x) = x * mask / (1 - p): its gradient is the same mask and scale, which `buffer`
  // holds as dropout(x) / x; recomputing the mask from ones keeps zeros in x harmless.
  std::vector<float> grad(static_cast<size_t>(x.numel()));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, rank, 1.0f, du.data_as<float>(),
              rank, module_.a.data(), in, 0.0f, grad.data(), in);
  std::vector<float> ones(grad.size(), 1.0f), mask;
  Tensor ones_view(DType::F32, x.shape(), x.device(), nullptr, ones.data());
  const float* scale = dropped(ones_view, mask, seed, train);
  float* out = dx->data_as<float>();
  for (size_t i = 0; i < grad.size(); ++i) out[i] += grad[i] * scale[i];
}

}  // namespace flow2
