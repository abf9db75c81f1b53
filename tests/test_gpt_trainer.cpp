// End-to-end tests of the train_gpt program on a small text file it is given: a short run prints
// the baselines and falling losses, the same seed reproduces every printed loss, a checkpoint
// saved and loaded gives back the same validation loss, and every bad input (missing or empty
// corpus, corpus shorter than the context, heads not dividing d_model, a checkpoint of another
// shape) exits 1 with a message naming the values.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>

#include "tests/run_program.h"

namespace {

namespace fs = std::filesystem;

using Result = minipipe::test_util::ProgramResult;

Result run(const std::string& args) { return minipipe::test_util::run_program("train_gpt", args); }

class TrainGpt : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(MINIPIPE_BUILD_DIR) + "/train_gpt")) GTEST_SKIP() << "train_gpt is not built";
    dir_ = fs::temp_directory_path() / ("minipipe_train_gpt_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::string text;
    for (int i = 0; i < 60; ++i)
      text += "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. " + std::to_string(i) + "\n";
    write("corpus.txt", text);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& s) const { std::ofstream(dir_ / name, std::ios::binary) << s; }

  // A tiny model: a second or two per run.
  std::string tiny(const std::string& extra = "") const {
    return "--data " + path("corpus.txt") + " --layers 1 --d-model 16 --heads 2 --context 16 --batch 8 --steps 30 "
           "--lr 1e-2 --warmup 0 --eval-interval 10 --eval-iters 4 --sample 20 --threads 1 --seed 3 " + extra;
  }
  fs::path dir_;
};

// Every "step train-loss val-loss" pair, without the timing columns.
std::string losses(const std::string& out) {
  std::string kept;
  std::regex row(R"(\n +(\d+) +([0-9.]+) +([0-9.]+) )");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), row); it != std::sregex_iterator(); ++it)
    kept += (*it)[1].str() + " " + (*it)[2].str() + " " + (*it)[3].str() + "\n";
  return kept;
}

// The validation loss of the last row; nullopt when there is no row (the output format drifted):
// callers must fail then, not compare two "not found"s as equal.
std::optional<double> last_val_loss(const std::string& out) {
  const std::string l = losses(out);
  const std::regex row(R"(\d+ [0-9.]+ ([0-9.]+))");
  std::optional<double> v;
  for (auto it = std::sregex_iterator(l.begin(), l.end(), row); it != std::sregex_iterator(); ++it)
    v = std::stod((*it)[1]);
  return v;
}

TEST_F(TrainGpt, ShortRunPrintsBaselinesLearnsAndIsDeterministic) {
  Result a = run(tiny()), b = run(tiny());
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(a.output.find("ln(vocab) = "), std::string::npos) << a.output;
  EXPECT_NE(a.output.find("unigram entropy"), std::string::npos) << a.output;
  EXPECT_NE(a.output.find("---- sample"), std::string::npos) << a.output;
  const std::string la = losses(a.output);
  ASSERT_EQ(std::count(la.begin(), la.end(), '\n'), 4) << a.output;  // steps 0, 10, 20, 30
  EXPECT_EQ(la, losses(b.output));                                   // same seed, same losses
  std::smatch m;
  ASSERT_TRUE(std::regex_search(la, m, std::regex(R"(^0 ([0-9.]+))")));
  const std::optional<double> last = last_val_loss(a.output);
  ASSERT_TRUE(last.has_value()) << "no loss table in the output:\n" << a.output;
  EXPECT_LT(*last, std::stod(m[1]) - 0.5) << la;
}

TEST_F(TrainGpt, CheckpointRoundTripAndShapeMismatch) {
  Result saved = run(tiny("--save " + path("m.safetensors")));
  ASSERT_EQ(saved.status, 0) << saved.output;
  Result loaded = run(tiny("--load " + path("m.safetensors") + " --steps 0"));
  ASSERT_EQ(loaded.status, 0) << loaded.output;
  const std::optional<double> saved_loss = last_val_loss(saved.output), loaded_loss = last_val_loss(loaded.output);
  ASSERT_TRUE(saved_loss.has_value()) << "no loss table in the output of the saving run:\n" << saved.output;
  ASSERT_TRUE(loaded_loss.has_value()) << "no loss table in the output of the loading run:\n" << loaded.output;
  EXPECT_EQ(*loaded_loss, *saved_loss) << saved.output << loaded.output;
  Result other = run(tiny("--load " + path("m.safetensors") + " --d-model 32"));
  EXPECT_EQ(other.status, 1) << other.output;
  EXPECT_NE(other.output.find("d_model=16"), std::string::npos) << other.output;
  EXPECT_NE(other.output.find("d_model=32"), std::string::npos) << other.output;
}

TEST_F(TrainGpt, AsynchronousSchedulesTrain) {
  for (const char* schedule : {"pipedream", "2bw"}) {
    Result r = run(tiny(std::string("--stages 2 --microbatches 4 --clip 0 --schedule ") + schedule));
    EXPECT_EQ(r.status, 0) << schedule << "\n" << r.output;
    EXPECT_NE(r.output.find("weight versions held at once, peak over the run: 2 on rank 0"), std::string::npos)
        << schedule << "\n" << r.output;
  }
}

TEST_F(TrainGpt, BadInputExitsOneWithAMessage) {
  write("empty.txt", "");
  write("short.txt", "too short for the context");
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"--data " + path("missing.txt"), "missing.txt' does not exist"},
      {"--data " + path("empty.txt"), "is empty"},
      {"--data " + path("short.txt") + " --context 16", "context + 1 = 17"},
      {tiny("--heads 3"), "heads=3 does not divide d_model=16"},
      {tiny("--vocab words"), "--vocab must be char or byte, got 'words'"},
      {tiny("--load " + path("missing.safetensors")), "missing.safetensors"},
      {tiny("--stages 2 --schedule pipedream"), "--clip 1 and --schedule pipedream do not combine"},
  };
  for (const Case& c : cases) {
    Result r = run(c.args);
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
}

}  // namespace
