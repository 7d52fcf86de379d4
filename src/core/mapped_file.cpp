#include "flow2/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "flow2/error.h"

namespace flow2 {

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
  const std::byte* data = nullptr;
  if (size > 0) {
    void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int mmap_errno = errno;
    ::close(fd);
    if (mapping == MAP_FAILED) fail("{}: cannot map: {}", name, std::strerror(mmap_errno));
    data = static_cast<const std::byte*>(mapping);
  } else {
    ::close(fd);
  }
  return std::shared_ptr<const MappedFile>(new MappedFile(std::move(name), data, size));
}

MappedFile::~MappedFile() {
  if (size_ > 0) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace flow2
