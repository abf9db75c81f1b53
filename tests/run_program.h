// For the end-to-end tests: run one of the built example programs with arguments and capture
// its exit status and everything it printed (stdout and stderr together).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace minipipe::test_util {

struct ProgramResult {
  int status = -1;  // the exit code; -1 if it could not run or died from a signal
  std::string output;
};

// `program` is a target name in the build directory, e.g. "train_mlp".
inline ProgramResult run_program(const std::string& program, const std::string& args) {
  const std::string cmd = std::string(MINIPIPE_BUILD_DIR) + "/" + program + " " + args + " 2>&1";
  ProgramResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  while (fgets(buf.data(), buf.size(), pipe)) r.output += buf.data();
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace minipipe::test_util
