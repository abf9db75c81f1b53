// AtomicFile: a uniquely named temporary file beside the target, written, fsynced and renamed.
#include "nn/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"

namespace minipipe::nn {

namespace {
std::string errno_str() { return std::strerror(errno); }
std::atomic<uint64_t> temp_counter{0};
}  // namespace

AtomicFile::AtomicFile(std::string target, std::string what) : target_(std::move(target)), what_(std::move(what)) {
  // The pid keeps processes apart, the counter the writers of one process (threads, or one thread
  // writing twice). O_EXCL refuses a name that exists, e.g. left by a crashed process whose pid
  // came back: try the next number.
  for (int attempt = 0; attempt < 100; ++attempt) {
    path_ = target_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(temp_counter.fetch_add(1));
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ >= 0 || errno != EEXIST) break;
  }
  MP_CHECK(fd_ >= 0, what_, ": cannot create ", path_, " (to write ", target_, "): ", errno_str());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    MP_CHECK(w > 0, what_, ": cannot write ", path_, " (to write ", target_, "): ", errno_str());
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  MP_CHECK(::fsync(fd_) == 0, what_, ": cannot fsync ", path_, ": ", errno_str());
  const int fd = fd_;
  fd_ = -1;
  MP_CHECK(::close(fd) == 0, what_, ": cannot close ", path_, ": ", errno_str());
  MP_CHECK(std::rename(path_.c_str(), target_.c_str()) == 0, what_, ": cannot rename ", path_, " to ", target_, ": ",
           errno_str());
  committed_ = true;
  // Make the rename itself durable; best effort (some file systems refuse to fsync a directory).
  const std::string dir = std::filesystem::path(target_).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void atomic_write(const std::string& target, std::string_view bytes, const std::string& what) {
  AtomicFile out(target, what);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace minipipe::nn
