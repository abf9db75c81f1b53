// benchmarks/run_benchmarks.sh in CI: its smallest sweep (--smoke, seconds) over the benchmark
// programs of this build directory, so the script and the programs' tables never rot; its flag
// errors; and, where this build has the libtorch twins (-DMINIPIPE_LIBTORCH=ON), the paired table.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/run_program.h"
#include "tests/temp_dir_test.h"

using minipipe::test_util::ProgramResult;
using minipipe::test_util::program_path;
using minipipe::test_util::run_command;

namespace {

class BenchScript : public minipipe::test_util::TempDirTest {
 protected:
  BenchScript() : TempDirTest("minipipe_bench_script_") {}

  // The script on this build's programs (no build of its own), results in the test's directory.
  ProgramResult script(const std::string& args) const {
    const std::filesystem::path root = std::filesystem::path(__FILE__).parent_path().parent_path();
    return run_command("bash " + (root / "benchmarks/run_benchmarks.sh").string() + " --no-build --build-dir " +
                       std::string(MINIPIPE_BUILD_DIR) + " --out " + path("results") + " " + args);
  }

  // Sanitizer builds make only the test programs: the benchmarks are not there to run.
  static bool built(std::initializer_list<const char*> programs) {
    for (const char* p : programs)
      if (!std::filesystem::exists(program_path(p))) return false;
    return true;
  }
};

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// The start of a table row as the programs print it: the name left-aligned in `width`, the thread count.
std::string row(int width, const std::string& name, int threads) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "\n%-*s %3d ", width, name.c_str(), threads);
  return buf;
}

TEST_F(BenchScript, SmokeSweepRunsEveryProgram) {
  if (!built({"bench_matmul", "bench_elementwise", "bench_overhead", "bench_mlp_step", "bench_gpt"}))
    GTEST_SKIP() << "the benchmark programs are not built in " << MINIPIPE_BUILD_DIR;
  const ProgramResult r = script("--smoke");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "shape     thr  minipipe  openblas")) << r.output;          // bench_matmul's table
  EXPECT_TRUE(has(r.output, "GB/s = bytes read + written")) << r.output;                 // bench_elementwise's
  EXPECT_TRUE(has(r.output, "minipipe per-call overhead")) << r.output;                  // bench_overhead's
  EXPECT_TRUE(has(r.output, row(20, "add/nograd", 1))) << r.output;
  EXPECT_TRUE(has(r.output, row(20, "linear8/step", 1))) << r.output;
  EXPECT_TRUE(has(r.output, row(22, "784-512-256-10/b128", 1))) << r.output;             // bench_mlp_step's
  EXPECT_TRUE(has(r.output, row(22, "L4-C128-H4-T64-B32", 1))) << r.output;              // bench_gpt's
  EXPECT_TRUE(has(r.output, "done; load average now")) << r.output;
  for (const char* f : {"matmul.json", "elementwise.json", "overhead.json", "mlp_step.json", "gpt_step.json"})
    EXPECT_TRUE(std::filesystem::exists(path("results/") + f)) << f;
}

TEST_F(BenchScript, BadFlagsSayWhy) {
  ProgramResult r = script("--bogus");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(has(r.output, "unknown argument '--bogus'")) << r.output;
  r = script("--only nothing");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(has(r.output, "must be one of all, matmul, eigen, elementwise, overhead, mlp, gpt; got 'nothing'"))
      << r.output;
  r = script("--threads 0,x");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(has(r.output, "must be a list like 1,2; got '0,x'")) << r.output;
  r = script("--reps");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(has(r.output, "--reps needs a value")) << r.output;
  r = script("--libtorch --only matmul");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(has(r.output, "no twin of matmul")) << r.output;
}

// Only where this build directory has the twins (configured with -DMINIPIPE_LIBTORCH=ON).
TEST_F(BenchScript, LibtorchPairsShareOneTable) {
  if (!built({"bench_overhead", "torch_overhead"}))
    GTEST_SKIP() << "no libtorch twins in " << MINIPIPE_BUILD_DIR << " (configure with -DMINIPIPE_LIBTORCH=ON)";
  const ProgramResult r = script("--smoke --libtorch --only overhead");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "benchmark                          thr    minipipe    libtorch  unit   ratio")) << r.output;
  EXPECT_TRUE(has(r.output, row(34, "overhead/add/nograd", 1))) << r.output;
  EXPECT_TRUE(has(r.output, row(34, "overhead/linear8/step", 1))) << r.output;
}

}  // namespace
