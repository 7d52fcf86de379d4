#include "flow2/build_info.h"

namespace flow2 {

#ifdef FLOW2_HAVE_CUDA
int cuda_device_count_runtime();  // backend/cuda/cuda_devices.cu
bool built_with_cuda() {
  return true;
}
int cuda_device_count() {
  return cuda_device_count_runtime();
}
#else
bool built_with_cuda() {
  return false;
}
int cuda_device_count() {
  return 0;
}
#endif

std::string version() {
  return FLOW2_VERSION;
}

std::vector<std::pair<std::string, std::string>> build_configuration() {
  // The macros below describe the flags this library was compiled with (FLOW2_NATIVE's
  // -march=native turns them on for the build machine).
  std::string isa;
  [[maybe_unused]] auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!isa.empty()) isa += ' ';
    isa += name;
  };
#ifdef __AVX2__
  add(true, "avx2");
#endif
#ifdef __F16C__
  add(true, "f16c");
#endif
#ifdef __AVX512F__
  add(true, "avx512f");
#endif
#ifdef __AVX512VNNI__
  add(true, "avx512vnni");
#endif
#ifdef __ARM_NEON
  add(true, "neon");
#endif
  return {
      {"build_type", FLOW2_BUILD_TYPE},
      {"compiler", __VERSION__},
      {"instruction_sets", isa.empty() ? "baseline" : isa},
      {"cuda", built_with_cuda() ? "yes" : "no"},
#ifdef _OPENMP
      {"openmp", std::to_string(_OPENMP)},
#else
      {"openmp", "no"},
#endif
  };
}

}  // namespace flow2
