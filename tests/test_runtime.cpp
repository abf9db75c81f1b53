// The programs' OpenMP wait policy (minipipe::init_runtime, tensor/threads.h): started without
// OMP_WAIT_POLICY they re-execute themselves with passive waits; a policy the user set is kept.
// Read from libgomp's own report (OMP_DISPLAY_ENV=verbose); skips under another OpenMP runtime.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

// Runs `env <env> build/show_partition --help`, stdout and stderr together.
std::string run_with_env(const std::string& env) {
  const std::string cmd = "env " + env + " " + std::string(MINIPIPE_BUILD_DIR) + "/show_partition --help 2>&1";
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return out;
  std::array<char, 4096> buf;
  while (fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  pclose(pipe);
  return out;
}

bool built() { return std::filesystem::exists(std::string(MINIPIPE_BUILD_DIR) + "/show_partition"); }

}  // namespace

TEST(Runtime, ProgramsWaitPassivelyUnlessTheUserChose) {
  if (!built()) GTEST_SKIP() << "show_partition is not built";
  const std::string unset = run_with_env("-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose");
  if (unset.find("GOMP_SPINCOUNT") == std::string::npos) GTEST_SKIP() << "not libgomp:\n" << unset;
  // libgomp prints its settings when it loads: spinning (300000) in the first process, then none
  // after the re-exec.
  EXPECT_NE(unset.find("GOMP_SPINCOUNT = '0'"), std::string::npos) << unset;
  EXPECT_NE(unset.find("Usage"), std::string::npos) << unset;  // and the program still ran
  const std::string active = run_with_env("-u GOMP_SPINCOUNT OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=verbose");
  EXPECT_NE(active.find("OMP_WAIT_POLICY = 'ACTIVE'"), std::string::npos) << active;
  EXPECT_EQ(active.find("GOMP_SPINCOUNT = '0'"), std::string::npos) << active;
  const std::string spin = run_with_env("-u OMP_WAIT_POLICY GOMP_SPINCOUNT=300000 OMP_DISPLAY_ENV=verbose");
  EXPECT_EQ(spin.find("GOMP_SPINCOUNT = '0'"), std::string::npos) << spin;
}
