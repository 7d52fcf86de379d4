// A read-only memory mapping of a whole file: tensors read from checkpoints are views into it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace flow2 {

class MappedFile {
 public:
  // Maps `path` read-only; throws flow2::Error naming the file when it cannot.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Where `bytes` lie when a live MappedFile maps all of them: its file's open descriptor and the
  // offset, so that a reader can pread them instead of faulting the pages in one by one (the
  // GPU upload does); nullopt for other memory. The descriptor stays open while the MappedFile
  // that maps the bytes lives.
  struct Location {
    int fd = -1;
    uint64_t offset = 0;
  };
  static std::optional<Location> locate(std::span<const std::byte> bytes);

 private:
  MappedFile(std::string path, int fd, const std::byte* data, size_t size)
      : path_(std::move(path)), fd_(fd), data_(data), size_(size) {}
  std::string path_;
  int fd_;
  const std::byte* data_;
  size_t size_;
};

}  // namespace flow2
