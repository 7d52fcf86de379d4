#include "measure/page_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "flow2/error.h"

namespace flow2::measure {

std::vector<std::filesystem::path> model_files(const std::filesystem::path& path) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(path)) {
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
  } else {
    files.push_back(path);
  }
  return files;
}

int64_t resident_bytes(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  check(fd >= 0, "{}: cannot open: {}", file.string(), std::strerror(errno));
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) {
    ::close(fd);
    return 0;
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  check(map != MAP_FAILED, "{}: cannot map: {}", file.string(), std::strerror(errno));
  const long page = ::sysconf(_SC_PAGESIZE);
  const size_t pages = (static_cast<size_t>(size) + page - 1) / page;
  std::vector<unsigned char> in_core(pages);
  const int status = ::mincore(map, static_cast<size_t>(size), in_core.data());
  ::munmap(map, static_cast<size_t>(size));
  check(status == 0, "{}: mincore failed: {}", file.string(), std::strerror(errno));
  int64_t resident = 0;
  for (unsigned char flag : in_core) resident += (flag & 1) ? page : 0;
  return std::min<int64_t>(resident, size);
}

PageCacheDrop drop_from_page_cache(const std::vector<std::filesystem::path>& files) {
  PageCacheDrop drop;
  try {
    for (const auto& file : files) drop.resident_before_bytes += resident_bytes(file);
    drop.attempted = true;
    for (const auto& file : files) {
      const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
      check(fd >= 0, "{}: cannot open: {}", file.string(), std::strerror(errno));
      const int status = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
      check(status == 0, "{}: posix_fadvise: {}", file.string(), std::strerror(status));
    }
    for (const auto& file : files) drop.resident_after_bytes += resident_bytes(file);
    drop.dropped = drop.resident_after_bytes == 0;
  } catch (const Error& error) {
    drop.error = error.what();
  }
  return drop;
}

}  // namespace flow2::measure
