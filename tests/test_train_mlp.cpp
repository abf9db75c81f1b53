// End-to-end tests of the train_mlp program: a short run on Fashion-MNIST learns (accuracy and
// loss past stated marks), the same seed reproduces every printed figure but the timings, and
// bad input exits non-zero with a message naming it.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>

#include "tests/run_program.h"

namespace {

using Result = minipipe::test_util::ProgramResult;

Result run(const std::string& args) { return minipipe::test_util::run_program("train_mlp", args); }

// Every "epoch" line without its timing columns.
std::string figures(const std::string& out) {
  std::string kept;
  std::regex epoch(R"((epoch +\d+ +train loss [0-9.]+ +test acc [0-9.]+%))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), epoch); it != std::sregex_iterator(); ++it)
    kept += (*it)[1].str() + "\n";
  return kept;
}

bool have_data() { return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

}  // namespace

TEST(TrainMlp, ShortRunLearnsAndIsDeterministic) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string args = "--epochs 2 --max-steps 300 --threads 1 --seed 5";
  Result a = run(args), b = run(args);
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  const std::string fa = figures(a.output);
  ASSERT_FALSE(fa.empty()) << a.output;
  EXPECT_EQ(fa, figures(b.output));  // same seed: same losses and accuracy, digit for digit
  std::smatch m;
  ASSERT_TRUE(std::regex_search(a.output, m, std::regex(R"(final test accuracy: ([0-9.]+)%)"))) << a.output;
  EXPECT_GT(std::stod(m[1]), 83.0) << a.output;  // 300 steps of AdamW reach ~85%
  ASSERT_TRUE(std::regex_search(fa, m, std::regex(R"(train loss ([0-9.]+))")));
  EXPECT_LT(std::stod(m[1]), 0.75) << fa;  // first epoch's mean loss, from ln(10) = 2.30
}

TEST(TrainMlp, BadInputExitsNonZeroWithAMessage) {
  Result missing = run("--data /nonexistent-dir --max-steps 1");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("/nonexistent-dir/train-images-idx3-ubyte"), std::string::npos) << missing.output;
  Result sizes = run("--hidden 64,0");
  EXPECT_EQ(sizes.status, 1);
  EXPECT_NE(sizes.output.find("--hidden"), std::string::npos) << sizes.output;
  Result opt = run("--optimizer lbfgs");
  EXPECT_EQ(opt.status, 1);
  EXPECT_NE(opt.output.find("lbfgs"), std::string::npos) << opt.output;
  Result load = run("--load /nonexistent.safetensors --max-steps 1");
  EXPECT_EQ(load.status, 1);
  EXPECT_NE(load.output.find("/nonexistent.safetensors"), std::string::npos) << load.output;
}

TEST(TrainMlp, SaveThenLoadRestoresTheModel) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string path = std::filesystem::temp_directory_path() / "minipipe_test_mlp.safetensors";
  Result a = run("--epochs 1 --max-steps 50 --threads 1 --save " + path);
  ASSERT_EQ(a.status, 0) << a.output;
  // The same shape loads; another shape is refused with the tensor named.
  Result same = run("--epochs 1 --max-steps 1 --threads 1 --load " + path);
  EXPECT_EQ(same.status, 0) << same.output;
  Result other = run("--hidden 128 --max-steps 1 --load " + path);
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.output.find("0.weight"), std::string::npos) << other.output;
  std::filesystem::remove(path);
}
