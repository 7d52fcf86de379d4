#include "backend/device_memory_check.h"

#include "flow2/error.h"

namespace flow2 {

void check_weights_fit(uint64_t needed, const DeviceMemory& memory) {
  if (needed <= memory.available) return;
  constexpr double kGB = 1e9;
  fail(
      "the model does not fit in GPU memory: its weights need {:.2f} GB ({} bytes), but {} has "
      "{:.2f} GB free of {:.2f} GB; use a quantized model (flow2 convert --type q4_0), free the "
      "GPU, or --device cpu",
      static_cast<double>(needed) / kGB, needed, memory.device,
      static_cast<double>(memory.available) / kGB, static_cast<double>(memory.total) / kGB);
}

}  // namespace flow2
