#include "flow2/backend_registry.h"

#include "backend/cuda_backend_factory.h"
#include "flow2/backend.h"
#include "flow2/build_info.h"
#include "flow2/error.h"

namespace flow2 {

std::vector<BackendEntry> registered_backends() {
  BackendEntry cpu{"cpu", false, true, ""};
  BackendEntry cuda{"cuda", true, false, ""};
  if (!built_with_cuda()) {
    cuda.unavailable_reason = "this build has no CUDA support";
  } else if (cuda_device_count() == 0) {
    cuda.unavailable_reason = "no CUDA device is visible";
  } else {
    cuda.available = true;
  }
  return {cpu, cuda};
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "auto") return make_backend(resolve_auto_device());
  if (name == "cuda" || name.starts_with("cuda:")) return make_cuda_backend(name);
  fail("unknown device '{}' (auto, cpu, cuda or cuda:N)", name);
}

}  // namespace flow2
