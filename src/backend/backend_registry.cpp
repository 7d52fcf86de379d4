#include "backend/cuda_backend_factory.h"
#include "flow2/backend.h"
#include "flow2/error.h"

namespace flow2 {

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "auto") return make_backend(resolve_auto_device());
  if (name == "cuda" || name.starts_with("cuda:")) return make_cuda_backend(name);
  fail("unknown device '{}' (auto, cpu, cuda or cuda:N)", name);
}

}  // namespace flow2
