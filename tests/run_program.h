// For the end-to-end tests: run one of the built example programs with arguments and capture
// its exit status and everything it printed (stdout and stderr together).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace minipipe::test_util {

struct ProgramResult {
  int status = -1;  // the exit code; -1 if it could not run or died from a signal
  std::string output;
};

// Runs a shell command line.
inline ProgramResult run_command(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  ProgramResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  while (fgets(buf.data(), buf.size(), pipe)) r.output += buf.data();
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `program` is a target name in the build directory, e.g. "train_mlp". MINIPIPE_PROGRAM_DIR in the
// environment names another folder: the programs built here and carried to a GPU machine
// (scripts/gpu_bundle.sh) sit elsewhere there.
inline std::string program_path(const std::string& program) {
  const char* dir = std::getenv("MINIPIPE_PROGRAM_DIR");
  return (dir && *dir ? std::string(dir) : std::string(MINIPIPE_BUILD_DIR)) + "/" + program;
}
inline ProgramResult run_program(const std::string& program, const std::string& args) {
  return run_command(program_path(program) + " " + args);
}

// `mpirun -np N program args` with the flags the tests need (CMakeLists.txt: MINIPIPE_MPIRUN); empty
// when minipipe was built without MPI.
inline std::string mpirun() {
#ifdef MINIPIPE_MPIRUN
  return MINIPIPE_MPIRUN;
#else
  return "";
#endif
}

}  // namespace minipipe::test_util
