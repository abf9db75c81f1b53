// Atomic file writes, for checkpoints (nn/checkpoint.cpp) and schedule files
// (parallel/program_file.cpp): the bytes go to a temporary file beside the target, which is
// renamed over the target only once complete, so a reader sees the old file or the new one.
#pragma once

#include <string>
#include <string_view>

namespace minipipe::nn {

// The temporary file of one atomic write, removed on destruction unless committed. Its name is
// unique to this writer (pid + a process-wide counter, created with O_EXCL): two threads or
// processes writing the same target never share a temporary file, and the last rename wins.
class AtomicFile {
 public:
  // `what` prefixes every error message (e.g. "save").
  AtomicFile(std::string target, std::string what);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  // fsync, close and rename over the target: after this the target holds the new bytes.
  void commit();
  const std::string& temp_path() const { return path_; }

 private:
  std::string target_, what_, path_;
  int fd_ = -1;
  bool committed_ = false;
};

// The whole write in one call.
void atomic_write(const std::string& target, std::string_view bytes, const std::string& what);

}  // namespace minipipe::nn
