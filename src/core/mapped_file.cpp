#include "flow2/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "flow2/error.h"

namespace flow2 {
namespace {

// Every live mapping by its first byte, for MappedFile::locate.
struct Registry {
  std::mutex mutex;
  std::map<const std::byte*, const MappedFile*> mappings;
};

Registry& registry() {
  static Registry* instance = new Registry;  // never destroyed: mappings may outlive main
  return *instance;
}

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  std::string name = path.string();
  int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", name, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", name);
  }
  size_t size = static_cast<size_t>(info.st_size);
  if (size == 0) {
    ::close(fd);
    return std::shared_ptr<const MappedFile>(new MappedFile(std::move(name), -1, nullptr, 0));
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int mmap_errno = errno;
  if (mapping == MAP_FAILED) {
    ::close(fd);
    fail("{}: cannot map: {}", name, std::strerror(mmap_errno));
  }
  // The descriptor stays open for locate()'s readers.
  auto file = std::shared_ptr<const MappedFile>(
      new MappedFile(std::move(name), fd, static_cast<const std::byte*>(mapping), size));
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().mappings[file->data_] = file.get();
  return file;
}

MappedFile::~MappedFile() {
  if (size_ == 0) return;
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    registry().mappings.erase(data_);
  }
  ::munmap(const_cast<std::byte*>(data_), size_);
  ::close(fd_);
}

std::optional<MappedFile::Location> MappedFile::locate(std::span<const std::byte> bytes) {
  if (bytes.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(registry().mutex);
  auto& mappings = registry().mappings;
  auto after = mappings.upper_bound(bytes.data());
  if (after == mappings.begin()) return std::nullopt;
  const MappedFile& file = *std::prev(after)->second;
  const auto offset = static_cast<uint64_t>(bytes.data() - file.data_);
  if (offset + bytes.size() > file.size_) return std::nullopt;
  return Location{file.fd_, offset};
}

}  // namespace flow2
