// Tests of the schedule generators against closed forms from the literature (warm-up counts,
// in-flight micro-batches, bubble fractions, makespans) and of lowering: every generator for
// P in 1..8 and M in 1..32 passes the validator before and after lowering.
#include <gtest/gtest.h>

#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/simulator.h"
#include "parallel/validator.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;
using mp::Op;

namespace {
// Whether a rank's list is warm-up / steady state / cool-down with `warmup` warm-up forwards:
// F x warmup, then (F B) x (T - warmup), then B x warmup, T being the rank's forward count.
// (With warmup = T - 1 and warmup = T the lists coincide: the last warm-up forward and the
// first steady-state forward are the same action.)
bool has_warmup(const std::vector<mp::Action>& list, int warmup) {
  std::string want, got;
  const int T = static_cast<int>(list.size()) / 2;
  for (int i = 0; i < warmup; ++i) want += 'F';
  for (int i = 0; i < T - warmup; ++i) want += "FB";
  for (int i = 0; i < warmup; ++i) want += 'B';
  for (const mp::Action& a : list) got += mp::op_name(a.op);
  return got == want;
}
// Equal F and B, no communication cost; a chunk of an interleaved program is 1/v of a stage.
mp::Costs unit_costs(const mp::Program& p) {
  const double v = static_cast<double>(p.num_chunks) / p.num_ranks;
  return mp::Costs::uniform(p.num_chunks, 1.0 / v, 1.0 / v);
}
}  // namespace

TEST(Generators, OneFOneBWarmupIsMinOfPMinusRMinus1AndM) {
  for (int P = 1; P <= 8; ++P)
    for (int M = 1; M <= 12; ++M) {
      mp::Program p = mp::one_f_one_b(P, M);
      for (int r = 0; r < P; ++r)
        EXPECT_TRUE(has_warmup(p.on(r), std::min(P - r - 1, M)))
            << "P=" << P << " M=" << M << " r=" << r;
    }
}

TEST(Generators, OneFOneBHasTwoMComputeActionsPerRankAndAlternates) {
  for (int P = 1; P <= 6; ++P)
    for (int M = 1; M <= 10; ++M) {
      mp::Program p = mp::one_f_one_b(P, M);
      for (int r = 0; r < P; ++r) {
        EXPECT_EQ(p.on(r).size(), static_cast<size_t>(2 * M));
        EXPECT_EQ(p.count(Op::F, r), M);
        EXPECT_EQ(p.count(Op::B, r), M);
      }
    }
  // The steady state is one F then one B: P=2, M=3 on rank 0 is F0 | F1 B0 F2 B1 | B2.
  mp::Program p = mp::one_f_one_b(2, 3);
  std::string s;
  for (const mp::Action& a : p.on(0)) s += mp::to_string(a) + " ";
  EXPECT_EQ(s, "0F0 0F1 0B0 0F2 0B1 0B2 ");
}

TEST(Generators, PeakInFlightOneFOneBIsMinOfPMinusRAndMGPipeIsM) {
  for (int P = 1; P <= 8; ++P)
    for (int M = 1; M <= 16; ++M) {
      mp::Costs c = mp::Costs::uniform(P, 1, 2);
      c.activation_bytes.assign(static_cast<size_t>(P), 100.0);
      mp::Simulation f1b = mp::simulate(mp::one_f_one_b(P, M), c);
      mp::Simulation gp = mp::simulate(mp::gpipe(P, M), c);
      for (int r = 0; r < P; ++r) {
        EXPECT_EQ(f1b.ranks[r].peak_inflight, std::min(P - r, M)) << "P=" << P << " M=" << M;
        EXPECT_EQ(f1b.ranks[r].peak_inflight_bytes, 100.0 * std::min(P - r, M));
        EXPECT_EQ(gp.ranks[r].peak_inflight, M);
      }
    }
}

TEST(Generators, GPipeAndOneFOneBHaveTheSameBubbleOfTotalTime) {
  for (int P = 1; P <= 8; ++P)
    for (int M = 1; M <= 16; ++M)
      for (bool lowered : {false, true}) {
        const double want = static_cast<double>(P - 1) / (M + P - 1);
        for (mp::Program p : {mp::gpipe(P, M), mp::one_f_one_b(P, M)}) {
          if (lowered) p = mp::lower(p);
          mp::Simulation s = mp::simulate(p, unit_costs(p));
          for (int r = 0; r < P; ++r) {
            EXPECT_DOUBLE_EQ(s.ranks[r].bubble_of_total, want) << "P=" << P << " M=" << M;
            EXPECT_DOUBLE_EQ(s.ranks[r].bubble_over_ideal, static_cast<double>(P - 1) / M);
          }
        }
      }
}

TEST(Generators, GPipeMakespanInUnitSlotsIsTwiceMPlusPMinus1) {
  for (int P = 1; P <= 8; ++P)
    for (int M = 1; M <= 16; ++M) {
      mp::Program p = mp::gpipe(P, M);
      EXPECT_EQ(mp::simulate(p, unit_costs(p)).makespan, 2.0 * (M + P - 1));
      EXPECT_EQ(mp::simulate(mp::lower(p), unit_costs(p)).makespan, 2.0 * (M + P - 1));
    }
}

TEST(Generators, InterleavedWarmupP4M8V2Is10864) {
  mp::Program p = mp::interleaved_1f1b(4, 8, 2);
  EXPECT_EQ(p.num_chunks, 8);
  const std::vector<int> warmups = {10, 8, 6, 4};
  for (int r = 0; r < 4; ++r) {
    EXPECT_TRUE(has_warmup(p.on(r), warmups[static_cast<size_t>(r)])) << "rank " << r;
    EXPECT_FALSE(has_warmup(p.on(r), warmups[static_cast<size_t>(r)] - 1)) << "rank " << r;
  }
  // Megatron's order on the last rank: micro-batches 0..3 through chunk 3, then through chunk 7.
  std::string s;
  for (int i = 0; i < 8; ++i) s += mp::to_string(p.on(3)[static_cast<size_t>(i)]) + " ";
  EXPECT_EQ(s, "3F0 3F1 3F2 3F3 7F0 7B0 7F1 7B1 ");
}

TEST(Generators, InterleavedBubbleOverIdealIsOneOverVTimesPMinus1OverM) {
  for (int P = 1; P <= 6; ++P)
    for (int v = 1; v <= 4; ++v)
      for (int M = P; M <= 4 * P; M += P)
        for (bool lowered : {false, true}) {
          mp::Program p = mp::interleaved_1f1b(P, M, v);
          if (lowered) p = mp::lower(p);
          mp::Simulation s = mp::simulate(p, unit_costs(p));
          const double want = (1.0 / v) * (P - 1) / M;
          for (int r = 0; r < P; ++r)
            EXPECT_NEAR(s.ranks[r].bubble_over_ideal, want, 1e-12)
                << "P=" << P << " M=" << M << " v=" << v << " r=" << r;
          EXPECT_NEAR(s.makespan, 2.0 * M + 2.0 * (P - 1) / v, 1e-12);
        }
}

TEST(Generators, InterleavedRejectsMItCannotGroupAndSaysWhichWork) {
  EXPECT_FALSE(mp::interleaved_accepts(4, 9));  // floor(9/4) = 2 groups of 4.5
  try {
    mp::interleaved_1f1b(4, 9, 2);
    FAIL() << "M=9 on P=4 should be rejected";
  } catch (const minipipe::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("M=9"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nearest M that work: 8 and 10"), std::string::npos) << msg;
  }
  for (int M : {1, 3, 4, 5, 7, 8, 10, 12, 15, 16}) EXPECT_TRUE(mp::interleaved_accepts(4, M)) << M;
  EXPECT_THROW(mp::interleaved_1f1b(4, 8, 0), minipipe::Error);
}

TEST(Generators, ForwardOnlyRunsEveryForwardOnce) {
  mp::Program p = mp::forward_only(3, 5);
  EXPECT_TRUE(p.forward_only);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(p.count(Op::F, r), 5);
    EXPECT_EQ(p.on(r).size(), 5u);
  }
  mp::Simulation s = mp::simulate(p, mp::Costs::uniform(3, 1, 0));
  EXPECT_EQ(s.makespan, 5.0 + 2.0);                         // M + P - 1 forward slots
  EXPECT_DOUBLE_EQ(s.ranks[0].bubble_of_total, 2.0 / 7.0);  // (P-1)/(M+P-1)
  EXPECT_EQ(s.ranks[0].peak_inflight, 0);                   // nothing is kept for a backward
}

TEST(Generators, BadSizesAreClearErrors) {
  EXPECT_THROW(mp::gpipe(0, 4), minipipe::Error);
  EXPECT_THROW(mp::one_f_one_b(4, 0), minipipe::Error);
  EXPECT_THROW(mp::forward_only(-1, 4), minipipe::Error);
  EXPECT_THROW(mp::make_schedule("zero-bubble", 4, 8), minipipe::Error);
  EXPECT_THROW(mp::make_schedule("1f1b", 4, 8, 2), minipipe::Error);  // v only for interleaved
  EXPECT_EQ(mp::make_schedule("interleaved", 4, 8, 2).actions,
            mp::interleaved_1f1b(4, 8, 2).actions);
}

// The sweep: every generator, P in 1..8, M in 1..32 (where accepted), as
// generated and after lowering.
TEST(Generators, EveryGeneratorPassesTheValidatorBeforeAndAfterLowering) {
  int checked = 0;
  for (int P = 1; P <= 8; ++P)
    for (int M = 1; M <= 32; ++M) {
      std::vector<mp::Program> programs = {mp::gpipe(P, M), mp::one_f_one_b(P, M),
                                           mp::forward_only(P, M)};
      for (int v = 1; v <= 3; ++v)
        if (mp::interleaved_accepts(P, M)) programs.push_back(mp::interleaved_1f1b(P, M, v));
      for (const mp::Program& p : programs) {
        mp::ValidationReport before = mp::check(p);
        ASSERT_TRUE(before.ok()) << "P=" << P << " M=" << M << "\n" << before.to_string();
        mp::Program lowered = mp::lower(p);
        mp::ValidationReport after = mp::check(lowered);
        ASSERT_TRUE(after.ok()) << "P=" << P << " M=" << M << "\n" << after.to_string();
        ASSERT_TRUE(after.lowered || P == 1);
        // Lowering adds communication only: the compute order of every rank is unchanged.
        for (int r = 0; r < P; ++r) {
          std::vector<mp::Action> compute;
          for (const mp::Action& a : lowered.on(r))
            if (mp::is_compute(a.op)) compute.push_back(a);
          ASSERT_EQ(compute, p.on(r));
        }
        ++checked;
      }
    }
  EXPECT_GT(checked, 8 * 32 * 3);
}

// Zero-bubble schedules against the paper's closed forms (Qi et al. 2024, section 2).
namespace {
double rank_window_gap(const mp::Simulation& sim, int r) {  // idle between a rank's first and last action
  const auto& tl = sim.timeline[static_cast<size_t>(r)];
  return tl.back().end - tl.front().start - sim.ranks[static_cast<size_t>(r)].busy;
}
}  // namespace

TEST(Generators, ZeroBubbleSchedulesAreValidBeforeAndAfterLowering) {
  for (int P = 1; P <= 8; ++P)
    for (int M = 1; M <= 24; ++M)
      for (const char* name : {"zb-h1", "zb-h2"}) {
        const mp::Program p = mp::make_schedule(name, P, M);
        ASSERT_TRUE(mp::check(p).ok()) << name << " P=" << P << " M=" << M << "\n" << mp::check(p).to_string();
        EXPECT_TRUE(p.has_w());
        for (int r = 0; r < P; ++r) EXPECT_EQ(p.count(Op::W, r), M);
        const mp::Program low = mp::lower(p, mp::Costs::uniform(P, 1.0, 1.0, 1.0));
        ASSERT_TRUE(mp::check(low).ok()) << name << " P=" << P << " M=" << M;
      }
}

// ZB-H1: every rank idles (P-1)(T_F + T_B - T_W) a step (T_W <= T_F), with 1F1B's memory.
TEST(Generators, ZbH1IdlesAThirdOf1F1BWithItsMemory) {
  const double costs[][3] = {{1, 1, 1}, {1, 2, 1}, {2, 1, 1}, {2, 2, 1}, {3, 2, 1}, {2, 3, 1}, {2, 2, 2}};
  for (const auto& c : costs)
    for (int P = 2; P <= 6; ++P)
      for (int M = P; M <= 16; M += 3) {
        SCOPED_TRACE("F,B,W = " + std::to_string(c[0]) + "," + std::to_string(c[1]) + "," + std::to_string(c[2]) +
                     " P=" + std::to_string(P) + " M=" + std::to_string(M));
        const mp::Costs costs = mp::Costs::uniform(P, c[0], c[1], c[2]);
        const mp::Simulation sim = mp::simulate(mp::zb_h1(P, M), costs);
        const double work = M * (c[0] + c[1] + c[2]), idle = (P - 1) * (c[0] + c[1] - c[2]);
        EXPECT_DOUBLE_EQ(sim.makespan, work + idle);
        for (int r = 0; r < P; ++r) {
          EXPECT_DOUBLE_EQ(sim.ranks[static_cast<size_t>(r)].idle, idle) << "rank " << r;
          EXPECT_EQ(sim.ranks[static_cast<size_t>(r)].peak_inflight, std::min(P - r, M)) << "rank " << r;
        }
        // 1F1B with the same work (B + W in one backward) idles (P-1)(T_F + T_B + T_W).
        const mp::Simulation flush = mp::simulate(mp::one_f_one_b(P, M), mp::Costs::uniform(P, c[0], c[1] + c[2]));
        EXPECT_DOUBLE_EQ(flush.makespan - sim.makespan, 2 * (P - 1) * c[2]);
      }
}

// ZB-H2: at equal costs no rank idles between its first and last action (the parallelogram), the
// step takes M·3T + (P-1)·T (the last rank starts P-1 forwards late), and rank 0 holds 2P - 1.
TEST(Generators, ZbH2HasNoBubbleInsideAnyRanksWindow) {
  for (double t : {1.0, 2.5})
    for (int P = 2; P <= 6; ++P)
      for (int M = 2 * P - 1; M <= 20; M += 2) {
        SCOPED_TRACE("T=" + std::to_string(t) + " P=" + std::to_string(P) + " M=" + std::to_string(M));
        const mp::Simulation sim = mp::simulate(mp::zb_h2(P, M), mp::Costs::uniform(P, t, t, t));
        EXPECT_DOUBLE_EQ(sim.makespan, 3 * M * t + (P - 1) * t);
        for (int r = 0; r < P; ++r) EXPECT_DOUBLE_EQ(rank_window_gap(sim, r), 0.0) << "rank " << r;
        EXPECT_EQ(sim.ranks[0].peak_inflight, 2 * P - 1);
        // ZB-H1 at the same costs leaves gaps inside the windows (its idle is spread through the step).
        const mp::Simulation h1 = mp::simulate(mp::zb_h1(P, M), mp::Costs::uniform(P, t, t, t));
        EXPECT_GT(rank_window_gap(h1, 0), 0.0);
      }
}
