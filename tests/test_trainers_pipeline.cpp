// End-to-end tests of the trainers as pipelines: train_mlp and train_gpt with --stages/--schedule/
// --checkpoint/--dp print what one device prints, under `local` and under mpirun; a checkpoint written by
// a 2-stage run loads into 1 and 3 stages; and every bad flag — including a wrong mpirun -np and
// ranks started with different flags — is an error naming it, with a non-zero exit, never a hang.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "parallel/nccl/comm_nccl.h"
#include "tensor/device.h"
#include "tests/run_program.h"

namespace {

using minipipe::test_util::ProgramResult;
using minipipe::test_util::run_program;

bool have_data() { return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }
bool have_mpi() { return !minipipe::test_util::mpirun().empty(); }
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The "epoch" lines' loss, and the final accuracy.
struct Figures {
  std::string losses;
  double accuracy = -1;
};
Figures figures(const std::string& out) {
  Figures f;
  std::regex epoch(R"(epoch +\d+ +train loss ([0-9.]+))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), epoch); it != std::sregex_iterator(); ++it)
    f.losses += (*it)[1].str() + " ";
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(final test accuracy: ([0-9.]+)%)"))) f.accuracy = std::stod(m[1]);
  return f;
}

const std::string kShort = "--epochs 1 --max-steps 60 --seed 5 --threads 1 ";

// Cut into stages, micro-batched, checkpointed or not: the same loss to the printed digit as one
// device, and the same accuracy within one test image (10,000 images: 0.01%) — a GEMM over fewer
// rows rounds differently in the last bit, nothing more.
TEST(TrainMlpPipeline, EverySchedulePrintsWhatOneDevicePrints) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const ProgramResult one = run_program("train_mlp", kShort + "--stages 1");
  ASSERT_EQ(one.status, 0) << one.output;
  const Figures want = figures(one.output);
  ASSERT_FALSE(want.losses.empty()) << one.output;
  for (const char* flags : {"--stages 2 --microbatches 4 --schedule 1f1b",
                            "--dp 2 --microbatches 2", "--stages 2 --dp 2 --microbatches 2 --zero1",
                            "--dp 4 --no-overlap --bucket-mb 0.1",
                            "--stages 2 --microbatches 8 --schedule gpipe --checkpoint always",
                            "--stages 3 --microbatches 4 --schedule 1f1b --checkpoint except_last --partition params",
                            "--stages 2 --microbatches 4 --schedule interleaved --virtual 2",
                            "--stages 2 --stage-replicas 2,1 --microbatches 4",
                            "--stages 2 --microbatches 4 --schedule zb-h1",
                            "--stages 2 --dp 2 --microbatches 2 --schedule zb-h1",
                            "--stages 3 --microbatches 8 --schedule zb-h2 --checkpoint always",
                            "--stages 3 --stage-replicas 1,2,1 --microbatches 4 --schedule gpipe --checkpoint always"}) {
    const ProgramResult r = run_program("train_mlp", kShort + flags);
    ASSERT_EQ(r.status, 0) << flags << "\n" << r.output;
    const Figures got = figures(r.output);
    EXPECT_EQ(got.losses, want.losses) << flags;
    EXPECT_NEAR(got.accuracy, want.accuracy, 0.011) << flags;
  }
}

TEST(TrainMlpPipeline, PrintsTheBudgetThePartitionAndTheSchedule) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const ProgramResult r = run_program("train_mlp", "--max-steps 2 --stages 2 --microbatches 4 --threads 1");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part : {"local communicator, 2 ranks x 1 intra-op thread = 2 of", "partition uniform: 2 chunks",
                           "0 *    0..1            401920", "(loss)", "schedule 1f1b: 2 ranks, 4 micro-batches",
                           "bubble 20.0% of the step on rank 0 (25.0% over ideal)"})
    EXPECT_TRUE(has(r.output, part)) << part << "\n" << r.output;
}

TEST(TrainMlpPipeline, CheckpointFromTwoStagesLoadsIntoOneAndThree) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string path = std::filesystem::temp_directory_path() / "minipipe_test_pipe_mlp.safetensors";
  const ProgramResult saved = run_program("train_mlp", kShort + "--stages 2 --microbatches 2 --save " + path);
  ASSERT_EQ(saved.status, 0) << saved.output;
  const double trained = figures(saved.output).accuracy;
  // Evaluated right after loading (one step at learning rate 0 keeps the weights): the same accuracy.
  for (const char* stages : {"--stages 1", "--stages 3 --microbatches 2"}) {
    const ProgramResult r = run_program("train_mlp", "--epochs 1 --max-steps 1 --lr 0 --threads 1 " +
                                                         std::string(stages) + " --load " + path);
    ASSERT_EQ(r.status, 0) << stages << "\n" << r.output;
    EXPECT_NEAR(figures(r.output).accuracy, trained, 0.011) << stages << "\n" << r.output;
  }
  std::filesystem::remove(path);
}

TEST(TrainMlpPipeline, BadPipelineFlagsExitNonZeroNamingThem) {
  std::vector<std::pair<const char*, const char*>> cases = {
      {"--stages 9", "cannot cut a model of 5 layers into 9 chunks"},
      {"--stages 2 --microbatches 3", "--batch 128 does not split into --dp 1 replicas x --microbatches 3"},
      {"--stages 2 --schedule chimera", "unknown schedule 'chimera'"},
      {"--stages 2 --checkpoint sometimes", "unknown checkpoint mode 'sometimes'"},
      {"--stages 2 --comm gloo", "unknown communicator 'gloo'"},
      {"--device tpu", "unknown device 'tpu'"},
      {"--device cuda:7", "device cuda:7"},
      {"--stages 2 --partition even", "unknown partition 'even'"},
      {"--stages 3 --microbatches 7 --schedule interleaved --virtual 2 --batch 140 --hidden 64,64,64", "M=7"},
      {"--stages 2 --virtual 2", "--virtual 2 needs --schedule interleaved"},
      {"--stages 0", "at least 1 rank"},
      {"--dp 3", "--batch 128 does not split into --dp 3 replicas x --microbatches 1"},
      {"--dp 2 --bucket-mb 0", "--bucket-mb must be positive"},
      {"--stages 2 --stage-replicas 2", "--stage-replicas lists 1 stages but --stages is 2"},
      {"--stages 2 --stage-replicas 2,1 --dp 2 --microbatches 2", "--stage-replicas and --dp 2 do not combine"},
      {"--stages 2 --stage-replicas 2,1 --microbatches 2 --schedule interleaved", "stage replicas run gpipe or 1f1b"},
      {"--stages 2 --stage-replicas 4,1 --microbatches 2", "stage 0 has 4 replicas; it needs 1 to M = 2"},
      {"--stages 2 --schedule 2bw --microbatches 4 --window 3", "--window 3 does not divide --microbatches 4"},
      {"--stages 2 --schedule pipedream --no-weight-stashing --checkpoint always",
       "--no-weight-stashing and --checkpoint always do not combine"},
      {"--stages 2 --schedule pipedream --dp 2 --microbatches 2", "--schedule pipedream and --dp 2 do not combine"},
      {"--stages 2 --window 2", "--window 2 applies to --schedule 2bw, not 1f1b"},
  };
  // nccl needs a GPU per rank: without two, the error says what is missing (the build or the GPUs).
  if (minipipe::cuda_device_count() < 2)
    cases.emplace_back("--stages 2 --comm nccl",
                       minipipe::parallel::nccl_is_built() ? "--comm nccl needs one GPU per rank: 2 ranks on this machine"
                                                 : "has no NCCL backend");
  for (const auto& [flags, message] : cases) {
    const ProgramResult r = run_program("train_mlp", std::string("--max-steps 1 ") + flags);
    EXPECT_EQ(r.status, 1) << flags << "\n" << r.output;
    EXPECT_TRUE(has(r.output, message)) << flags << "\n" << r.output;
  }
}

// The same job as rank threads and as MPI processes: the same computation on the same ranks, so
// the same figures to the last printed digit. Returns the MPI run's output.
std::string expect_mpi_matches_local(const std::string& flags, int ranks) {
  const ProgramResult local = run_program("train_mlp", flags);
  const ProgramResult mpi = minipipe::test_util::run_command(minipipe::test_util::mpirun() + " -np " +
                                                             std::to_string(ranks) + " " +
                                                             minipipe::test_util::program_path("train_mlp") + " " +
                                                             flags + " --comm mpi");
  EXPECT_EQ(local.status, 0) << local.output;
  EXPECT_EQ(mpi.status, 0) << mpi.output;
  EXPECT_FALSE(figures(local.output).losses.empty()) << local.output;
  EXPECT_EQ(figures(mpi.output).losses, figures(local.output).losses);
  EXPECT_EQ(figures(mpi.output).accuracy, figures(local.output).accuracy);
  return mpi.output;
}

TEST(TrainMlpPipeline, MpiRunPrintsWhatLocalPrints) {
  if (!have_data() || !have_mpi()) GTEST_SKIP() << "needs dataset-fashion-mnist and MPI";
  const std::string out = expect_mpi_matches_local(kShort + "--stages 2 --microbatches 4 --checkpoint except_last", 2);
  EXPECT_TRUE(has(out, "mpi communicator, 2 ranks x 1 intra-op thread")) << out;
}

// The asynchronous schedules: each stage steps its optimizer inside the pipeline, as threads and as
// MPI processes alike; rank r of PipeDream holds P - r weight versions, every 2BW rank two.
TEST(TrainMlpPipeline, AsynchronousSchedulesTrainAsThreadsAndAsMpiProcesses) {
  if (!have_data() || !have_mpi()) GTEST_SKIP() << "needs dataset-fashion-mnist and MPI";
  const std::string dream = expect_mpi_matches_local(kShort + "--stages 2 --microbatches 4 --schedule pipedream", 2);
  EXPECT_TRUE(has(dream, "weight versions held at once, peak over the run: 2 on rank 0, 1 on rank 1 (240 optimizer "
                         "steps per stage)")) << dream;
  EXPECT_TRUE(has(dream, "each stage steps its optimizer after every B")) << dream;
  const std::string two = expect_mpi_matches_local(kShort + "--stages 2 --microbatches 4 --schedule 2bw --window 2", 2);
  EXPECT_TRUE(has(two, "weight versions held at once, peak over the run: 2 on rank 0, 2 on rank 1 (120 optimizer "
                       "steps per stage)")) << two;
  EXPECT_GT(figures(dream).accuracy, 0.6) << dream;
  EXPECT_GT(figures(two).accuracy, 0.6) << two;
}

// Stage replicas as three MPI processes: the figures of the same job as threads.
TEST(TrainMlpPipeline, MpiStageReplicasPrintWhatLocalPrints) {
  if (!have_data() || !have_mpi()) GTEST_SKIP() << "needs dataset-fashion-mnist and MPI";
  const std::string out = expect_mpi_matches_local(kShort + "--stages 2 --stage-replicas 2,1 --microbatches 4", 3);
  EXPECT_TRUE(has(out, "stage replicas (1F1B-RR: micro-batch m on replica m mod R) on ranks 0/1 2")) << out;
}

// The 2 x 2 grid as four MPI processes: the figures of the same grid as threads.
TEST(TrainMlpPipeline, MpiGridPrintsWhatLocalPrints) {
  if (!have_data() || !have_mpi()) GTEST_SKIP() << "needs dataset-fashion-mnist and MPI";
  const std::string out = expect_mpi_matches_local(kShort + "--stages 2 --dp 2 --microbatches 2 --zero1", 4);
  EXPECT_TRUE(has(out, "rank grid: 2 stages x 2 replicas")) << out;
}

TEST(TrainMlpPipeline, MpiJobsThatCannotRunEndWithAnError) {
  if (!have_mpi()) GTEST_SKIP() << "minipipe was built without MPI";
  const std::string program = minipipe::test_util::program_path("train_mlp");
  // Three processes for two stages: every rank says so.
  ProgramResult r = minipipe::test_util::run_command(minipipe::test_util::mpirun() + " -np 3 " + program +
                                                     " --max-steps 1 --stages 2 --comm mpi");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "mpirun started 3 processes, but this job needs 2 ranks")) << r.output;
  // Two ranks started with different flags (MPMD): stopped at the start, naming the flag.
  if (!have_data()) return;
  r = minipipe::test_util::run_command(minipipe::test_util::mpirun() + " -np 1 " + program +
                                       " --max-steps 1 --stages 2 --comm mpi --lr 0.001 : -np 1 " + program +
                                       " --max-steps 1 --stages 2 --comm mpi --lr 0.01");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "flags differ across ranks: rank 1 has --lr=0.01, rank 0 has --lr=0.001"))
      << r.output;
  // Three processes for 2 stages x 2 replicas.
  r = minipipe::test_util::run_command(minipipe::test_util::mpirun() + " -np 3 " + program +
                                       " --max-steps 1 --stages 2 --dp 2 --comm mpi");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "mpirun started 3 processes, but this job needs 4 ranks")) << r.output;
  // Without mpirun, --comm mpi is a job of one process.
  r = run_program("train_mlp", "--max-steps 1 --stages 2 --comm mpi");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "mpirun started 1 processes, but this job needs 2 ranks: run mpirun -np 2")) << r.output;
}

// train_gpt as a pipeline: the same validation losses as one device, clipping across stages.
TEST(TrainGptPipeline, TwoStagesPrintWhatOneDevicePrints) {
  const std::string args = "--steps 10 --eval-interval 5 --eval-iters 2 --batch 8 --layers 2 --d-model 32 "
                           "--heads 2 --context 16 --sample 20 --threads 1 --dropout 0.1 ";
  const ProgramResult one = run_program("train_gpt", args + "--stages 1");
  const ProgramResult two = run_program("train_gpt", args + "--stages 2 --microbatches 4 --checkpoint always");
  ASSERT_EQ(one.status, 0) << one.output;
  ASSERT_EQ(two.status, 0) << two.output;
  auto table = [](const std::string& out) {
    std::string rows;
    std::regex row(R"(\n +(\d+) +([0-9.]+) +([0-9.]+) )");
    for (auto it = std::sregex_iterator(out.begin(), out.end(), row); it != std::sregex_iterator(); ++it)
      rows += (*it)[1].str() + " " + (*it)[2].str() + " " + (*it)[3].str() + "\n";
    return rows;
  };
  const std::string want = table(one.output);
  ASSERT_EQ(std::count(want.begin(), want.end(), '\n'), 3) << one.output;  // steps 0, 5, 10
  EXPECT_EQ(table(two.output), want);
  EXPECT_TRUE(has(two.output, "---- sample")) << two.output;  // sampled on rank 0 after gathering
  const ProgramResult rr = run_program("train_gpt", args + "--stages 2 --stage-replicas 1,2 --microbatches 4");
  ASSERT_EQ(rr.status, 0) << rr.output;
  EXPECT_EQ(table(rr.output), want);
  const ProgramResult tied = run_program("train_gpt", args + "--stages 2 --tie-weights");
  EXPECT_EQ(tied.status, 1) << tied.output;
  EXPECT_TRUE(has(tied.output, "tied weights across stages are not supported")) << tied.output;
}

}  // namespace
