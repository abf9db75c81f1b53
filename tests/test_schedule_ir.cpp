// Tests of the schedule IR's text forms: actions (`2F0`, `1SEND_B3`) and program files, both
// directions, and the parse errors a student will see when a hand-written schedule is wrong.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/hammer.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/schedule.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;
using mp::Action;
using mp::Op;

namespace {
// The message of the minipipe::Error that `f` throws ("" if it does not throw).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const minipipe::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ScheduleIr, ActionTextMatchesPyTorchNotation) {
  EXPECT_EQ(mp::to_string(Action{2, Op::F, 0}), "2F0");
  EXPECT_EQ(mp::to_string(Action{1, Op::SEND_B, 3}), "1SEND_B3");
  EXPECT_EQ(mp::to_string(Action{12, Op::RECV_F, 105}), "12RECV_F105");
  EXPECT_EQ(mp::to_string(Action{0, Op::W, 7}), "0W7");
}

TEST(ScheduleIr, EveryActionRoundTrips) {
  for (int op = 0; op < mp::kNumOps; ++op)
    for (int c : {0, 3, 17})
      for (int m : {0, 9, 123}) {
        Action a{c, static_cast<Op>(op), m};
        EXPECT_EQ(mp::parse_action(mp::to_string(a)), a) << mp::to_string(a);
      }
}

TEST(ScheduleIr, BadActionsNameTheTokenAndTheProblem) {
  EXPECT_NE(error_of([] { mp::parse_action("F0"); }).find("'F0'"), std::string::npos);
  EXPECT_NE(error_of([] { mp::parse_action("F0"); }).find("chunk number"), std::string::npos);
  EXPECT_NE(error_of([] { mp::parse_action("0Q1"); }).find("unknown op 'Q'"), std::string::npos);
  EXPECT_NE(error_of([] { mp::parse_action("0SEND1"); }).find("unknown op 'SEND'"),
            std::string::npos);
  EXPECT_NE(error_of([] { mp::parse_action("0F"); }).find("micro-batch number"), std::string::npos);
  EXPECT_NE(error_of([] { mp::parse_action("0F1x"); }).find("unexpected 'x'"), std::string::npos);
  EXPECT_NE(error_of([] { mp::parse_action(""); }).find("empty action"), std::string::npos);
  EXPECT_THROW(mp::parse_action("-1F0"), minipipe::Error);
  EXPECT_THROW(mp::parse_action("0f0"), minipipe::Error);  // ops are upper case
}

TEST(ScheduleIr, MatchingCommPairsNeighbouringChunks) {
  EXPECT_EQ(mp::matching_comm({1, Op::SEND_F, 3}), (Action{2, Op::RECV_F, 3}));
  EXPECT_EQ(mp::matching_comm({2, Op::RECV_F, 3}), (Action{1, Op::SEND_F, 3}));
  EXPECT_EQ(mp::matching_comm({2, Op::SEND_B, 3}), (Action{1, Op::RECV_B, 3}));
  EXPECT_EQ(mp::matching_comm({1, Op::RECV_B, 3}), (Action{2, Op::SEND_B, 3}));
}

TEST(ScheduleIr, ProgramsRoundTripThroughText) {
  std::vector<mp::Program> programs = {mp::gpipe(3, 4), mp::one_f_one_b(4, 6),
                                       mp::interleaved_1f1b(2, 4, 3), mp::forward_only(3, 2),
                                       mp::lower(mp::interleaved_1f1b(4, 8, 2))};
  mp::Program custom = mp::Program::empty(2, 3, 1);  // a hand placement, a W
  custom.chunk_rank = {0, 0, 1};
  custom.on(0) = {{0, Op::F, 0}, {1, Op::F, 0}, {1, Op::B, 0}, {0, Op::B, 0}, {0, Op::W, 0}};
  custom.on(1) = {{2, Op::F, 0}, {2, Op::B, 0}};
  programs.push_back(custom);
  for (const mp::Program& p : programs) {
    mp::Program q = mp::parse_program(mp::to_string(p));
    EXPECT_EQ(q.num_ranks, p.num_ranks);
    EXPECT_EQ(q.num_chunks, p.num_chunks);
    EXPECT_EQ(q.num_microbatches, p.num_microbatches);
    EXPECT_EQ(q.forward_only, p.forward_only);
    EXPECT_EQ(q.chunk_rank, p.chunk_rank);
    EXPECT_EQ(q.actions, p.actions);
    EXPECT_EQ(mp::to_string(q), mp::to_string(p));
  }
}

TEST(ScheduleIr, ProgramFileRoundTripsOnDisk) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "minipipe_test_program.txt").string();
  mp::Program p = mp::lower(mp::one_f_one_b(3, 5));
  mp::write_program(p, path);
  mp::Program q = mp::read_program(path);
  std::remove(path.c_str());
  EXPECT_EQ(q.actions, p.actions);
  EXPECT_EQ(q.chunk_rank, p.chunk_rank);
  EXPECT_NE(error_of([] { mp::read_program("/nonexistent/prog.txt"); }).find("cannot open"),
            std::string::npos);
}

// Threads writing different programs to one path at once: each write succeeds and the file left
// is one whole program (every writer has its own temporary file).
TEST(ScheduleIr, ConcurrentWritesToOnePathLeaveOneWholeProgram) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("minipipe_test_program_concurrent_" + std::to_string(::getpid()) + ".txt"))
                               .string();
  constexpr int kThreads = 8, kRounds = 20;
  std::vector<mp::Program> programs;
  for (int t = 0; t < kThreads; ++t) programs.push_back(mp::lower(mp::one_f_one_b(2 + t % 3, 4 + t)));
  const std::vector<std::string> errors =
      minipipe::test_util::hammer(kThreads, kRounds, [&](int t) { mp::write_program(programs[t], path); });
  EXPECT_TRUE(errors.empty()) << errors.size() << " writes failed, the first: " << errors.front();
  const std::string text = error_of([&] { mp::read_program(path); });
  EXPECT_EQ(text, "") << "the file left is not one valid program";
  mp::Program q = mp::read_program(path);
  std::remove(path.c_str());
  const auto same = std::count_if(programs.begin(), programs.end(), [&](const mp::Program& p) {
    return mp::to_string(p) == mp::to_string(q);
  });
  EXPECT_EQ(same, 1) << mp::to_string(q);
}

TEST(ScheduleIr, HandWrittenFileWithDefaultsCommasAndComments) {
  const char* text =
      "# two ranks, chunk c on rank c mod 2\n"
      "ranks 2\n"
      "rank 0: 0F0, 0F1   # commas or spaces\n"
      "rank 1: 1F0 1B0\n"
      "rank 0: 0B0 0B1    # a second line appends\n"
      "rank 1: 1F1 1B1\n";
  mp::Program p = mp::parse_program(text);
  EXPECT_EQ(p.num_ranks, 2);
  EXPECT_EQ(p.num_chunks, 2);        // one past the largest chunk, at least P
  EXPECT_EQ(p.num_microbatches, 2);  // one past the largest micro-batch
  EXPECT_EQ(p.chunk_rank, (std::vector<int>{0, 1}));
  EXPECT_EQ(p.on(0),
            (std::vector<Action>{{0, Op::F, 0}, {0, Op::F, 1}, {0, Op::B, 0}, {0, Op::B, 1}}));
  EXPECT_EQ(p.on(1).size(), 4u);
  EXPECT_FALSE(p.forward_only);
  EXPECT_TRUE(mp::parse_program("ranks 1\nforward_only\nrank 0: 0F0\n").forward_only);
}

TEST(ScheduleIr, ParseErrorsNameLineAndToken) {
  auto err = [](const char* text) {
    return error_of([&] { mp::parse_program(text, "prog.txt"); });
  };
  std::string e = err("ranks 2\n\nrank 1: 1F0 1Q0 1B0\n");
  EXPECT_NE(e.find("prog.txt:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("token 2"), std::string::npos) << e;
  EXPECT_NE(e.find("'1Q0'"), std::string::npos) << e;
  e = err("ranks 2\nrnks 3\n");
  EXPECT_NE(e.find("prog.txt:2: unknown line 'rnks'"), std::string::npos) << e;
  e = err("ranks 2\nrank 2: 0F0\n");
  EXPECT_NE(e.find("prog.txt:2: rank 2 out of range"), std::string::npos) << e;
  e = err("rank 0: 0F0\n");
  EXPECT_NE(e.find("missing 'ranks P'"), std::string::npos) << e;
  e = err("ranks 0\n");
  EXPECT_NE(e.find("prog.txt:1:"), std::string::npos) << e;
  e = err("ranks 2\nranks 2\n");
  EXPECT_NE(e.find("given twice"), std::string::npos) << e;
  e = err("ranks 2\nchunks 4\nplacement 0 1 0\n");
  EXPECT_NE(e.find("lists 3 ranks but the program has 4 chunks"), std::string::npos) << e;
  e = err("ranks 2\nplacement 0 2\n");
  EXPECT_NE(e.find("names rank 2"), std::string::npos) << e;
  e = err("ranks 2\nrank x: 0F0\n");
  EXPECT_NE(e.find("prog.txt:2: expected 'rank R: <actions>'"), std::string::npos) << e;
}

TEST(ScheduleIr, ProgramCounts) {
  mp::Program p = mp::lower(mp::one_f_one_b(2, 3));
  EXPECT_TRUE(p.has_comm());
  EXPECT_FALSE(p.has_w());
  EXPECT_EQ(p.count(Op::F, 0), 3);
  EXPECT_EQ(p.count(Op::SEND_F, 0), 3);
  EXPECT_EQ(p.count(Op::RECV_B, 0), 3);
  EXPECT_EQ(p.count(Op::SEND_F, 1), 0);
  EXPECT_EQ(p.num_actions(), 2u * (6 + 6));
}
