// libFuzzer target: arbitrary bytes through the GGUF parser must either parse into in-bounds
// views or raise flow2::Error.
#include <cstddef>
#include <cstdint>

#include "flow2/error.h"
#include "flow2/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto file = flow2::GgufFile::parse(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "fuzz-input");
    unsigned checksum = 0;
    for (const auto& tensor : file.tensors()) {
      for (std::byte b : tensor.bytes) checksum += static_cast<unsigned>(b);
      if (tensor.numel() <= 4096) (void)tensor.to_f32();
    }
    (void)checksum;
  } catch (const flow2::Error&) {
  }
  return 0;
}
