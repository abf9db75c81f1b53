// Tests of the validator: one bad program per rule (the report names exactly that rule and marks
// the offending action in the grid), hand-made deadlocks under blocking send/recv, and the
// throwing form.
#include <gtest/gtest.h>

#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/validator.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;
using mp::Rule;

namespace {
mp::Program parse(const std::string& text) { return mp::parse_program(text, "test"); }

// Exactly one kind of rule broken, and it is `rule`.
void expect_only(const mp::ValidationReport& rep, Rule rule) {
  ASSERT_FALSE(rep.ok());
  for (const mp::Violation& v : rep.violations)
    EXPECT_EQ(v.rule, rule) << mp::rule_name(v.rule) << ": " << v.message;
  EXPECT_NE(rep.to_string().find(std::string("rule '") + mp::rule_name(rule) + "'"),
            std::string::npos);
}

bool marked(const mp::ValidationReport& rep, const std::string& action) {
  return rep.grid.find("[" + action + "]!") != std::string::npos;
}
}  // namespace

TEST(Validator, GeneratedProgramsAreValid) {
  EXPECT_TRUE(mp::check(mp::one_f_one_b(4, 8)).ok());
  EXPECT_TRUE(mp::check(mp::lower(mp::one_f_one_b(4, 8))).ok());
  EXPECT_TRUE(mp::check(mp::lower(mp::one_f_one_b(4, 8))).lowered);
  EXPECT_TRUE(mp::check(mp::one_f_one_b(4, 8)).grid.empty());
  EXPECT_NO_THROW(mp::validate(mp::interleaved_1f1b(4, 8, 2)));
}

TEST(Validator, PlacementActionOnTheWrongRankOrOutOfRange) {
  auto rep = mp::check(parse("ranks 2\nrank 0: 0F0 1F0 0B0\nrank 1: 1B0\n"));
  expect_only(rep, Rule::Placement);
  EXPECT_TRUE(marked(rep, "1F0"));
  EXPECT_NE(rep.violations[0].message.find("chunk 1 lives on rank 1"), std::string::npos);

  rep = mp::check(parse("ranks 1\nmicrobatches 1\nrank 0: 0F0 0B0 0F1\n"));
  EXPECT_TRUE(rep.has(Rule::Placement));
  EXPECT_TRUE(marked(rep, "0F1"));

  mp::Program p = mp::gpipe(2, 2);
  p.chunk_rank = {0, 5};
  expect_only(mp::check(p), Rule::Placement);
}

TEST(Validator, CountEachForwardAndBackwardExactlyOnce) {
  auto rep = mp::check(parse("ranks 1\nrank 0: 0F0 0F0 0B0\n"));  // F twice
  expect_only(rep, Rule::Count);
  EXPECT_EQ(rep.violations[0].index, 1);
  EXPECT_TRUE(marked(rep, "0F0"));

  rep = mp::check(parse("ranks 1\nmicrobatches 2\nrank 0: 0F0 0B0 0F1\n"));  // no 0B1
  expect_only(rep, Rule::Count);
  EXPECT_NE(rep.violations[0].message.find("missing 0B1"), std::string::npos);

  rep = mp::check(parse("ranks 1\nmicrobatches 2\nrank 0: 0F0 0B0 0F1 0B1 0W0\n"));  // no 0W1
  expect_only(rep, Rule::Count);
  EXPECT_NE(rep.violations[0].message.find("missing 0W1"), std::string::npos);

  rep = mp::check(parse("ranks 1\nforward_only\nrank 0: 0F0 0B0\n"));  // B in inference
  expect_only(rep, Rule::Count);
  EXPECT_TRUE(marked(rep, "0B0"));
}

TEST(Validator, ForwardBeforeBackwardOnEachChunk) {
  auto rep = mp::check(parse("ranks 2\nrank 0: 0F0 0B0\nrank 1: 1B0 1F0\n"));
  expect_only(rep, Rule::ForwardBeforeBackward);
  EXPECT_TRUE(marked(rep, "1B0"));
  EXPECT_EQ(rep.violations.size(), 1u);

  rep = mp::check(parse("ranks 1\nrank 0: 0F0 0W0 0B0\n"));  // W needs its B
  expect_only(rep, Rule::ForwardBeforeBackward);
  EXPECT_TRUE(marked(rep, "0W0"));
}

TEST(Validator, DependencyAcrossChunks) {
  // Chunks 0 and 1 both on rank 0: 1F0 needs 0F0's output.
  auto rep = mp::check(parse("ranks 1\nchunks 2\nrank 0: 1F0 0F0 1B0 0B0\n"));
  expect_only(rep, Rule::Dependency);
  EXPECT_TRUE(marked(rep, "1F0"));
  // ... and 0B0 needs 1B0's gradient.
  rep = mp::check(parse("ranks 1\nchunks 2\nrank 0: 0F0 1F0 0B0 1B0\n"));
  expect_only(rep, Rule::Dependency);
  EXPECT_TRUE(marked(rep, "0B0"));
  // Lowered: F before the receive of its input; a send before the compute it sends.
  rep =
      mp::check(parse("ranks 2\nrank 0: 0F0 0SEND_F0 0RECV_B0 0B0\n"
                      "rank 1: 1F0 1RECV_F0 1B0 1SEND_B0\n"));
  expect_only(rep, Rule::Dependency);
  EXPECT_TRUE(marked(rep, "1F0"));
  rep =
      mp::check(parse("ranks 2\nrank 0: 0SEND_F0 0F0 0RECV_B0 0B0\n"
                      "rank 1: 1RECV_F0 1F0 1B0 1SEND_B0\n"));
  expect_only(rep, Rule::Dependency);
  EXPECT_TRUE(marked(rep, "0SEND_F0"));
}

TEST(Validator, MatchingEverySendHasItsReceive) {
  // 0SEND_F0 with no 1RECV_F0 on rank 1.
  auto rep =
      mp::check(parse("ranks 2\nrank 0: 0F0 0SEND_F0 0RECV_B0 0B0\n"
                      "rank 1: 1F0 1B0 1SEND_B0\n"));
  expect_only(rep, Rule::Matching);
  EXPECT_TRUE(marked(rep, "0SEND_F0"));
  EXPECT_NE(rep.violations[0].message.find("no matching 1RECV_F0 on rank 1"), std::string::npos);
  // A message between chunks on the same rank is not needed.
  rep = mp::check(parse("ranks 1\nchunks 2\nrank 0: 0F0 0SEND_F0 1RECV_F0 1F0 1B0 0B0\n"));
  expect_only(rep, Rule::Matching);
  EXPECT_NE(rep.violations[0].message.find("share rank 0"), std::string::npos);
  // The last chunk sends nothing forward.
  rep =
      mp::check(parse("ranks 2\nrank 0: 0F0 0SEND_F0 0RECV_B0 0B0\n"
                      "rank 1: 1RECV_F0 1F0 1SEND_F0 1B0 1SEND_B0\n"));
  expect_only(rep, Rule::Matching);
  EXPECT_TRUE(marked(rep, "1SEND_F0"));
  // A lowered program needs every message: 0RECV_B0 / 1SEND_B0 both missing.
  rep = mp::check(parse("ranks 2\nrank 0: 0F0 0SEND_F0 0B0\nrank 1: 1RECV_F0 1F0 1B0\n"));
  expect_only(rep, Rule::Matching);
  EXPECT_NE(rep.violations[0].message.find("0B0 needs data from rank 1"), std::string::npos);
}

TEST(Validator, DetectsTheDeadlockOfNaiveBlockingLowering) {
  // "Receive just before use, send right after" for 1F1B, P=2, M=2: rank 0 blocks in 0SEND_F1
  // while rank 1 blocks in 1SEND_B0 — both send, nobody receives.
  auto rep =
      mp::check(parse("ranks 2\n"
                      "rank 0: 0F0 0SEND_F0 0F1 0SEND_F1 0RECV_B0 0B0 0RECV_B1 0B1\n"
                      "rank 1: 1RECV_F0 1F0 1B0 1SEND_B0 1RECV_F1 1F1 1B1 1SEND_B1\n"));
  expect_only(rep, Rule::Deadlock);
  EXPECT_EQ(rep.violations.size(), 2u);  // both ranks are stuck
  EXPECT_TRUE(marked(rep, "0SEND_F1"));
  EXPECT_TRUE(marked(rep, "1SEND_B0"));
  EXPECT_NE(rep.grid.find("stuck"), std::string::npos);
  EXPECT_NE(rep.violations[0].message.find("waits at 0SEND_F1 for 1RECV_F1 (rank 1 is stuck at "
                                           "1SEND_B0)"),
            std::string::npos)
      << rep.violations[0].message;
}

TEST(Validator, DetectsReceivesPostedInTheWrongOrder) {
  auto rep =
      mp::check(parse("ranks 2\n"
                      "rank 0: 0F0 0SEND_F0 0F1 0SEND_F1 0RECV_B0 0B0 0RECV_B1 0B1\n"
                      "rank 1: 1RECV_F1 1RECV_F0 1F0 1F1 1B0 1SEND_B0 1B1 1SEND_B1\n"));
  expect_only(rep, Rule::Deadlock);
  EXPECT_TRUE(marked(rep, "1RECV_F1"));
  EXPECT_TRUE(marked(rep, "0SEND_F0"));
}

TEST(Validator, DetectsACircularWaitInAComputeOnlyProgram) {
  // Rank 0 waits for 1B0 before running 0F1; rank 1 waits for 0F1 before reaching 1B0.
  auto rep = mp::check(parse("ranks 2\nrank 0: 0F0 0B0 0F1 0B1\nrank 1: 1F1 1B1 1F0 1B0\n"));
  expect_only(rep, Rule::Deadlock);
  EXPECT_FALSE(rep.lowered);
  EXPECT_TRUE(marked(rep, "0B0"));
  EXPECT_TRUE(marked(rep, "1F1"));
}

TEST(Validator, ValidateThrowsWithTheRuleAndTheGrid) {
  mp::Program p = parse("ranks 2\nrank 0: 0F0 0B0\nrank 1: 1B0 1F0\n");
  try {
    mp::validate(p);
    FAIL() << "validate should throw";
  } catch (const minipipe::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("rule 'F before B' broken"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[1B0]!"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step"), std::string::npos) << msg;
  }
}

TEST(Validator, StepGridOfAValidProgram) {
  const std::string grid = mp::step_grid(mp::lower(mp::one_f_one_b(2, 1)));
  EXPECT_EQ(grid,
            "step  | rank 0   | rank 1\n"
            "0     | 0F0      |\n"
            "1     | 0SEND_F0 | 1RECV_F0\n"
            "2     |          | 1F0\n"
            "3     |          | 1B0\n"
            "4     | 0RECV_B0 | 1SEND_B0\n"
            "5     | 0B0      |\n");
}
