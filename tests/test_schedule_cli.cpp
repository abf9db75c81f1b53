// End-to-end checks of examples/show_schedule: the printed program, chart and bubble table for a
// generated schedule, and a hand-written deadlocking file that must print the marked grid and
// exit non-zero. Skips when the example has not been built.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace {

struct CliRun {
  int status = -1;
  std::string out;
};

CliRun run(const std::string& args) {
  const std::string exe = std::string(MINIPIPE_BUILD_DIR) + "/show_schedule";
  CliRun r;
  if (!std::filesystem::exists(exe)) return r;
  FILE* pipe = popen((exe + " " + args + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

bool built() { return std::filesystem::exists(std::string(MINIPIPE_BUILD_DIR) + "/show_schedule"); }

}  // namespace

TEST(ShowSchedule, PrintsProgramChartAndBubbleNextToTheClosedForm) {
  if (!built()) GTEST_SKIP() << "show_schedule not built";
  CliRun r = run("--schedule 1f1b --stages 4 --microbatches 8 --costs 1,2,0 --act-bytes 1000");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("rank 3: 3F0 3B0 3F1 3B1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rank 3 |.  .  .  F0 B0 -- F1 B1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step time (makespan): 33"), std::string::npos) << r.out;
  // rank 0: bubble of total 9/33 next to 3/11, over ideal 9/24 next to 3/8, 4 micro-batches.
  EXPECT_NE(r.out.find("0.2727      0.2727 |     0.3750      0.3750 |        4     3.91 KiB"),
            std::string::npos)
      << r.out;
}

// docs/data_parallel.md's example: the slow first stage on two replicas sets the pace to 3 a
// micro-batch (30 for 8), where the plain 2-stage pipeline takes 49.
TEST(ShowSchedule, StageReplicasDealMicroBatchesRoundRobin) {
  if (!built()) GTEST_SKIP() << "show_schedule not built";
  CliRun r = run("--schedule 1f1b --stage-replicas 2,1 --microbatches 8 --chunk-scale 2,1");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("rank 0: 0F0 0F2 0B0 0F4 0B2 0F6 0B4 0B6"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rank 1: 0F1 0F3 0B1 0F5 0B3 0F7 0B5 0B7"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step time (makespan): 30"), std::string::npos) << r.out;
  CliRun plain = run("--schedule 1f1b --stages 2 --microbatches 8 --chunk-scale 2,1");
  EXPECT_NE(plain.out.find("step time (makespan): 49"), std::string::npos) << plain.out;
}

TEST(ShowSchedule, AnInvalidFilePrintsTheMarkedGridAndFails) {
  if (!built()) GTEST_SKIP() << "show_schedule not built";
  const std::string path =
      (std::filesystem::temp_directory_path() / "minipipe_deadlock.txt").string();
  std::ofstream(path) << "ranks 2\n"
                         "rank 0: 0F0 0SEND_F0 0F1 0SEND_F1 0RECV_B0 0B0 0RECV_B1 0B1\n"
                         "rank 1: 1RECV_F0 1F0 1B0 1SEND_B0 1RECV_F1 1F1 1B1 1SEND_B1\n";
  CliRun r = run("--file " + path);
  std::remove(path.c_str());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("rule 'deadlock' broken"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[0SEND_F1]!"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[1SEND_B0]!"), std::string::npos) << r.out;
}

TEST(ShowSchedule, RejectedSizesAreErrors) {
  if (!built()) GTEST_SKIP() << "show_schedule not built";
  CliRun r = run("--schedule interleaved --stages 4 --microbatches 9");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("nearest M that work: 8 and 10"), std::string::npos) << r.out;
}

TEST(ShowSchedule, ATinySlotIsAnErrorNotAnOverflow) {
  if (!built()) GTEST_SKIP() << "show_schedule not built";
  CliRun r = run("--schedule 1f1b --stages 4 --microbatches 8 --slot 1e-12");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("pass a larger slot"), std::string::npos) << r.out;
}

TEST(ShowSchedule, AsynchronousSchedulesShowTheVersionsEachMicroBatchReads) {
  if (!built()) GTEST_SKIP() << "show_schedule not built";
  CliRun r = run("--schedule pipedream --stages 4 --microbatches 8");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("rank 0: 0F0 0F1 0F2 0F3 0B0 0F4 0B1"), std::string::npos) << "1F1B's order\n" << r.out;
  // Second step: 8 updates before it; rank r runs P-1-r forwards ahead, each B an update.
  EXPECT_NE(r.out.find("rank 0: 8 8 8 8 9 10 11 12   (4 versions held at most)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rank 3: 8 9 10 11 12 13 14 15   (1 version held at most)"), std::string::npos) << r.out;
  r = run("--schedule pipedream --stages 3 --microbatches 6 --vertical-sync");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("rank 2: 6 6 6 7 8 9   (3 versions held at most)"), std::string::npos) << r.out;
  r = run("--schedule 2bw --stages 4 --microbatches 8 --window 4");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("rank 3: 1 1 1 1 2 2 2 2   (2 versions held at most)"), std::string::npos) << r.out;
  const std::pair<const char*, const char*> bad[] = {
      {"--schedule 2bw --stages 4 --microbatches 8 --window 2", "a window of at least P - 1 = 3 is needed"},
      {"--schedule 1f1b --window 2", "--window 2 applies to --schedule 2bw, not 1f1b"},
      {"--schedule 2bw --vertical-sync", "apply to --schedule pipedream, not 2bw"},
      {"--schedule pipedream --stage-replicas 2,1", "--schedule pipedream and --stage-replicas do not combine"},
  };
  for (const auto& [args, message] : bad) {
    r = run(args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << args << "\n" << r.out;
  }
}
