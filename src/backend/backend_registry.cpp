#include "flow2/backend.h"
#include "flow2/error.h"

namespace flow2 {

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "cuda") fail("the CUDA backend is not implemented yet; use --backend cpu");
  fail("unknown backend '{}' (available: cpu)", name);
}

}  // namespace flow2
