// The CUDA backend by device name, in every build: without the toolkit or a GPU it is an error
// that says which of the two is missing.
#pragma once

#include <memory>
#include <string>

#include "flow2/backend.h"

namespace flow2 {

// "cuda" (device 0) or "cuda:N".
std::unique_ptr<Backend> make_cuda_backend(const std::string& name);
// The device "auto" means: "cuda" when a GPU is usable, else "cpu".
std::string resolve_auto_device();

}  // namespace flow2
