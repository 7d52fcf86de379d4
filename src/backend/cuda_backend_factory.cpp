// Parses "cuda[:N]" and makes the backend, or says why it cannot.
#include "backend/cuda_backend_factory.h"

#include <charconv>

#include "flow2/build_info.h"
#include "flow2/error.h"
#ifdef FLOW2_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace flow2 {

std::unique_ptr<Backend> make_cuda_backend(const std::string& name) {
  int device = 0;
  if (name != "cuda") {
    const std::string_view index = std::string_view(name).substr(5);  // after "cuda:"
    auto [end, error] = std::from_chars(index.data(), index.data() + index.size(), device);
    check(error == std::errc() && end == index.data() + index.size() && device >= 0,
          "device '{}' is not cuda or cuda:N", name);
  }
  check(built_with_cuda(),
        "CUDA was asked for, but this flow2 was built without the CUDA toolkit; use --device cpu");
  const int count = cuda_device_count();
  check(count > 0, "CUDA was asked for, but no usable GPU is visible; use --device cpu");
  check(device < count, "CUDA device {} was asked for, but this machine has {} (cuda:0..cuda:{})",
        device, count, count - 1);
#ifdef FLOW2_HAVE_CUDA
  return std::make_unique<CudaBackend>(device);
#else
  fail("unreachable: built_with_cuda() without FLOW2_HAVE_CUDA");
#endif
}

std::string resolve_auto_device() {
  return built_with_cuda() && cuda_device_count() > 0 ? "cuda" : "cpu";
}

}  // namespace flow2
