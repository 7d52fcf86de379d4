#include "flow2/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "flow2/error.h"

namespace flow2 {
namespace {

std::filesystem::path temporary_name(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  auto name = path;
  name += fmt::format(".tmp.{}.{}", ::getpid(), counter++);
  return name;
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path path)
    : path_(std::move(path)), temporary_(temporary_name(path_)) {
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create: {}", path_.string(), std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temporary_.c_str());
  }
}

void AtomicFileWriter::write(std::span<const std::byte> bytes) {
  check(fd_ >= 0, "{}: write after commit", path_.string());
  const std::byte* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t written = ::write(fd_, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) fail("{}: write failed: {}", path_.string(), std::strerror(errno));
    data += written;
    left -= static_cast<size_t>(written);
  }
}

void AtomicFileWriter::write(std::string_view text) {
  write(std::as_bytes(std::span(text)));
}

void AtomicFileWriter::commit() {
  check(fd_ >= 0, "{}: committed twice", path_.string());
  if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", path_.string(), std::strerror(errno));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(temporary_.c_str());
    fail("{}: close failed: {}", path_.string(), std::strerror(errno));
  }
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    int rename_errno = errno;
    ::unlink(temporary_.c_str());
    fail("{}: cannot rename into place: {}", path_.string(), std::strerror(rename_errno));
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view contents) {
  AtomicFileWriter writer(path);
  writer.write(contents);
  writer.commit();
}

}  // namespace flow2
