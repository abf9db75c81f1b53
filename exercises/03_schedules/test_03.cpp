// Exercise 3's grader: the student's gpipe and one_f_one_b against the project's validator
// (parallel/validator.h), simulator (parallel/simulator.h) and the closed forms of
// docs/schedules.md: forwards before the first backward, peak micro-batches in flight, bubble.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "exercise.h"
#include "parallel/lowering.h"
#include "parallel/simulator.h"
#include "parallel/validator.h"
#include "tensor/error.h"

namespace {

using namespace minipipe;
using namespace minipipe::parallel;

constexpr int kMaxP = 5, kMaxM = 8;
using Generator = Program (*)(int, int);
const std::vector<std::pair<const char*, Generator>> kGenerators = {{"gpipe", exercises::gpipe},
                                                                    {"one_f_one_b", exercises::one_f_one_b}};

std::string label(const char* name, int P, int M) {
  std::ostringstream s;
  s << name << "(P=" << P << ", M=" << M << ")";
  return s.str();
}

std::string listing(const Program& p) {
  std::ostringstream s;
  for (int r = 0; r < p.num_ranks && r < static_cast<int>(p.actions.size()); ++r) {
    s << "  rank " << r << ":";
    for (const Action& a : p.on(r)) s << " " << to_string(a);
    s << "\n";
  }
  return s.str();
}

// The program's header (ranks, chunks, micro-batches) and the validator's verdict, with its grid.
void expect_valid(const char* name, Program (*gen)(int, int)) {
  for (int P = 1; P <= kMaxP; ++P)
    for (int M = 1; M <= kMaxM; ++M) {
      const Program p = gen(P, M);
      const std::string what = label(name, P, M);
      ASSERT_EQ(p.num_ranks, P) << what << " has " << p.num_ranks << " ranks; start from Program::empty(P, P, M)";
      ASSERT_EQ(p.num_chunks, P) << what << " has " << p.num_chunks << " chunks; one per rank: Program::empty(P, P, M)";
      ASSERT_EQ(p.num_microbatches, M) << what << " says " << p.num_microbatches << " micro-batches";
      const ValidationReport report = check(p);
      ASSERT_TRUE(report.ok()) << "the validator rejects " << what << ":\n" << report.to_string() << "\nyour program:\n"
                               << listing(p);
    }
}

TEST(Validator, GPipeIsAValidScheduleForEveryPAndM) { expect_valid("gpipe", exercises::gpipe); }
TEST(Validator, OneFOneBIsAValidScheduleForEveryPAndM) { expect_valid("one_f_one_b", exercises::one_f_one_b); }

// Forwards a rank runs before its first backward.
int forwards_before_first_backward(const Program& p, int r) {
  int n = 0;
  for (const Action& a : p.on(r)) {
    if (a.op == Op::B) break;
    if (a.op == Op::F) ++n;
  }
  return n;
}

TEST(ClosedForms, GPipeRunsEveryForwardFirst) {
  for (int P = 1; P <= kMaxP; ++P)
    for (int M = 1; M <= kMaxM; ++M) {
      const Program p = exercises::gpipe(P, M);
      ASSERT_EQ(static_cast<int>(p.actions.size()), P);
      for (int r = 0; r < P; ++r)
        if (forwards_before_first_backward(p, r) != M) {
          ADD_FAILURE() << label("gpipe", P, M) << ": rank " << r << " should run all " << M
                        << " forwards before its first backward, your schedule runs "
                        << forwards_before_first_backward(p, r) << "\n" << listing(p);
          return;
        }
    }
}

TEST(ClosedForms, OneFOneBWarmUpIsMinOfPMinusRMinus1AndM) {
  for (int P = 1; P <= kMaxP; ++P)
    for (int M = 1; M <= kMaxM; ++M) {
      const Program p = exercises::one_f_one_b(P, M);
      ASSERT_EQ(static_cast<int>(p.actions.size()), P);
      for (int r = 0; r < P; ++r) {
        const int warmup = std::min(P - r - 1, M), want = std::min(P - r, M);
        const int got = forwards_before_first_backward(p, r);
        if (got != want) {
          ADD_FAILURE() << "1F1B warm-up on rank " << r << " of P=" << P << ", M=" << M << " should be " << warmup
                        << " forwards (min(P-r-1, M))" << (warmup < M ? ", then the steady state's first F: " : ": ")
                        << want << " forwards before the first backward; your schedule runs " << got << "\n"
                        << listing(p);
          return;  // the first failing case is enough to act on
        }
      }
    }
}

TEST(ClosedForms, OneFOneBAlternatesAfterItsFirstBackward) {
  for (int P = 1; P <= kMaxP; ++P)
    for (int M = 1; M <= kMaxM; ++M) {
      const Program p = exercises::one_f_one_b(P, M);
      ASSERT_EQ(static_cast<int>(p.actions.size()), P);
      for (int r = 0; r < P; ++r) {
        const auto& list = p.on(r);
        bool seen_b = false;
        for (size_t i = 1; i < list.size(); ++i) {
          seen_b = seen_b || list[i - 1].op == Op::B;
          if (seen_b && list[i].op == Op::F && list[i - 1].op == Op::F) {
            ADD_FAILURE() << label("one_f_one_b", P, M) << ": rank " << r << " runs two forwards in a row ("
                          << to_string(list[i - 1]) << " " << to_string(list[i])
                          << ") after its first backward; the steady state alternates one F and one B\n" << listing(p);
            return;
          }
        }
      }
    }
}

// The simulator with equal F and B costs (1 each): peak micro-batches in flight and the bubble.
void expect_memory_and_bubble(const char* name, Program (*gen)(int, int), bool one_f_one_b) {
  for (int P = 1; P <= kMaxP; ++P)
    for (int M = 1; M <= kMaxM; ++M) {
      const Program p = gen(P, M);
      ASSERT_TRUE(check(p).ok()) << label(name, P, M) << " is not valid yet: see the Validator checks first";
      const Simulation sim = simulate(p, Costs::uniform(P, 1.0, 1.0));
      const double bubble = static_cast<double>(P - 1) / (M + P - 1);
      EXPECT_DOUBLE_EQ(sim.makespan, 2.0 * (M + P - 1))
          << label(name, P, M) << " with F = B = 1 should take 2(M+P-1) = " << 2 * (M + P - 1)
          << " time units, yours takes " << sim.makespan << "\n" << gantt(p, sim);
      for (int r = 0; r < P; ++r) {
        const int want = one_f_one_b ? std::min(P - r, M) : M;
        EXPECT_EQ(sim.ranks[static_cast<size_t>(r)].peak_inflight, want)
            << label(name, P, M) << ": rank " << r << " should hold at most " << want << " micro-batches ("
            << (one_f_one_b ? "min(P-r, M)" : "all M") << "), yours holds "
            << sim.ranks[static_cast<size_t>(r)].peak_inflight << "\n" << gantt(p, sim);
        EXPECT_NEAR(sim.ranks[static_cast<size_t>(r)].bubble_of_total, bubble, 1e-12)
            << label(name, P, M) << ": rank " << r << " should idle (P-1)/(M+P-1) = " << bubble
            << " of the step, yours idles " << sim.ranks[static_cast<size_t>(r)].bubble_of_total << "\n" << gantt(p, sim);
      }
      if (testing::Test::HasFailure()) return;  // the first failing case is enough to act on
    }
}

TEST(Simulator, GPipeHoldsAllMicroBatchesAndIdlesTheClosedFormBubble) {
  expect_memory_and_bubble("gpipe", exercises::gpipe, false);
}
TEST(Simulator, OneFOneBHoldsMinPMinusRAndMAndIdlesTheSameBubble) {
  expect_memory_and_bubble("one_f_one_b", exercises::one_f_one_b, true);
}

// What the executor will run: the project's lowering adds the messages, and the result must pass
// the validator's deadlock run too.
TEST(Lowering, BothSchedulesLowerToProgramsThatCannotDeadlock) {
  for (auto [name, gen] : kGenerators)
    for (int P = 2; P <= 4; ++P)
      for (int M = 1; M <= 6; ++M) {
        const Program p = gen(P, M);
        ASSERT_TRUE(check(p).ok()) << label(name, P, M) << " is not valid yet: see the Validator checks first";
        const ValidationReport report = check(lower(p));
        ASSERT_TRUE(report.ok()) << label(name, P, M) << " lowered:\n" << report.to_string();
      }
}

TEST(Errors, BadSizesAreErrorsNamingTheValue) {
  for (auto [name, gen] : kGenerators)
    for (auto [P, M, bad] : {std::tuple{0, 4, "P=0"}, std::tuple{2, 0, "M=0"}}) {
      try {
        gen(P, M);
        ADD_FAILURE() << name << "(" << P << ", " << M << ") should throw minipipe::Error (MP_CHECK) naming " << bad;
      } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.find("not implemented") != std::string::npos) {
          ADD_FAILURE() << msg;
          return;
        }
        EXPECT_NE(msg.find(bad), std::string::npos)
            << name << "(" << P << ", " << M << "): the error should name " << bad << ", it says: " << msg;
      }
    }
}

}  // namespace
