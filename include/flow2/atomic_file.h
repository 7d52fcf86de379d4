// Atomic file output: bytes go to a temporary sibling of the target, which is flushed to disk
// and renamed over the target on commit(). Destroyed uncommitted, it removes the temporary.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string_view>

namespace flow2 {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  int fd_ = -1;
};

void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

}  // namespace flow2
