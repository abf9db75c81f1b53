// Tests of the timed simulator: unequal stage costs (the slowest stage sets the pace), the link
// model (latency + bytes / bandwidth, blocking rendezvous in lowered programs), B/W costs,
// in-flight activation bytes, the two bubble conventions, and the text Gantt chart.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/simulator.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;
using mp::Op;

namespace {
const mp::TimedAction& find(const mp::Simulation& s, int rank, const std::string& action) {
  for (const mp::TimedAction& t : s.timeline[static_cast<size_t>(rank)])
    if (mp::to_string(t.action) == action) return t;
  throw std::runtime_error("no " + action + " on rank " + std::to_string(rank));
}
}  // namespace

// GPipe with unequal stages is a flow shop with identical jobs: the forwards end at
// ΣF + (M-1)·max F, the backwards take ΣB + (M-1)·max B more.
TEST(Simulator, GPipeWithUnequalStagesMatchesTheFlowShopFormula) {
  mp::Costs c;
  c.forward = {1, 1, 3, 1};
  c.backward = {2, 2, 5, 2};
  for (int M = 1; M <= 10; ++M) {
    const double want = 6 + (M - 1) * 3.0 + 11 + (M - 1) * 5.0;
    mp::Program p = mp::gpipe(4, M);
    EXPECT_EQ(mp::simulate(p, c).makespan, want) << "M=" << M;
    EXPECT_EQ(mp::simulate(mp::lower(p), c).makespan, want) << "M=" << M;
  }
}

// 1F1B: once the pipeline is full (M > P), each extra micro-batch costs exactly the slowest
// stage's F + B, wherever that stage sits, with or without blocking sends.
TEST(Simulator, SlowestStageSetsThePaceOfOneFOneB) {
  for (int P : {2, 3, 4, 6})
    for (int slow = 0; slow < P; ++slow) {
      mp::Costs c = mp::Costs::uniform(P, 1, 2);
      c.forward[static_cast<size_t>(slow)] = 2;
      c.backward[static_cast<size_t>(slow)] = 5;
      for (bool lowered : {false, true}) {
        auto makespan = [&](int M) {
          mp::Program p = mp::one_f_one_b(P, M);
          return mp::simulate(lowered ? mp::lower(p) : p, c).makespan;
        };
        for (int M = P; M <= P + 6; ++M)
          EXPECT_EQ(makespan(M + 1) - makespan(M), 7.0)
              << "P=" << P << " slow stage " << slow << " M=" << M << " lowered=" << lowered;
      }
      // The slow rank is the busiest, so it has the smallest bubble.
      mp::Simulation s = mp::simulate(mp::one_f_one_b(P, 16), c);
      for (int r = 0; r < P; ++r)
        if (r != slow) {
          EXPECT_GT(s.ranks[r].bubble_of_total, s.ranks[slow].bubble_of_total);
        }
    }
}

TEST(Simulator, MessagesTakeLatencyPlusBytesOverBandwidth) {
  mp::Costs c = mp::Costs::uniform(2, 1, 2);
  c.latency = 0.5;
  c.bandwidth = 50;              // bytes per time unit
  c.message_bytes = {100, 100};  // 0.5 + 100 / 50 = 2.5 per message
  EXPECT_EQ(c.message_time(0), 2.5);
  // Compute-only: the message is asynchronous; F0 1 + 2.5 + F1 1 + B1 2 + 2.5 + B0 2 = 11.
  mp::Simulation s = mp::simulate(mp::gpipe(2, 1), c);
  EXPECT_EQ(s.makespan, 11.0);
  EXPECT_EQ(find(s, 1, "1F0").start, 3.5);
  EXPECT_EQ(s.ranks[0].comm, 0.0);
  // Lowered: the same times, and each pair keeps both ranks in the transfer.
  s = mp::simulate(mp::lower(mp::gpipe(2, 1)), c);
  EXPECT_EQ(s.makespan, 11.0);
  EXPECT_EQ(find(s, 0, "0SEND_F0").start, 1.0);
  EXPECT_EQ(find(s, 1, "1RECV_F0").end, 3.5);
  EXPECT_EQ(find(s, 1, "1SEND_B0").start, 6.5);
  EXPECT_EQ(s.ranks[0].comm, 5.0);
  EXPECT_EQ(s.ranks[0].busy, 3.0);
  EXPECT_EQ(s.ranks[0].idle, 8.0);  // idle counts waiting and transfers: all but compute
}

TEST(Simulator, ABlockingSendWaitsForTheReceiver) {
  mp::Costs c;
  c.forward = {1, 3};
  c.backward = {1, 1};
  mp::Simulation s = mp::simulate(mp::lower(mp::gpipe(2, 2)), c);
  // Rank 0 finishes 0F1 at 2, but rank 1 posts 1RECV_F1 only after 1F0 ends at 1 + 3 = 4.
  EXPECT_EQ(find(s, 0, "0F1").end, 2.0);
  EXPECT_EQ(find(s, 0, "0SEND_F1").start, 4.0);
  EXPECT_EQ(find(s, 1, "1RECV_F1").start, 4.0);
}

TEST(Simulator, BIsTheFullBackwardUnlessTheProgramHasW) {
  mp::Costs c = mp::Costs::uniform(1, 1, 2, 3);
  mp::Simulation full = mp::simulate(mp::parse_program("ranks 1\nrank 0: 0F0 0B0\n"), c);
  EXPECT_EQ(find(full, 0, "0B0").end - find(full, 0, "0B0").start, 5.0);  // input + weight grad
  mp::Simulation split = mp::simulate(mp::parse_program("ranks 1\nrank 0: 0F0 0B0 0W0\n"), c);
  EXPECT_EQ(find(split, 0, "0B0").end - find(split, 0, "0B0").start, 2.0);
  EXPECT_EQ(find(split, 0, "0W0").end - find(split, 0, "0W0").start, 3.0);
  EXPECT_EQ(full.makespan, 6.0);
  EXPECT_EQ(split.makespan, 6.0);
}

TEST(Simulator, PeakInFlightBytesFollowTheChunks) {
  mp::Program p = mp::parse_program("ranks 1\nchunks 2\nrank 0: 0F0 1F0 0F1 1F1 1B0 0B0 1B1 0B1\n");
  mp::Costs c = mp::Costs::uniform(2, 1, 1);
  c.activation_bytes = {10, 100};
  mp::Simulation s = mp::simulate(p, c);
  EXPECT_EQ(s.ranks[0].peak_inflight, 4);
  EXPECT_EQ(s.ranks[0].peak_inflight_bytes, 220.0);
}

TEST(Simulator, BothBubbleConventionsSideBySide) {
  mp::Simulation s = mp::simulate(mp::one_f_one_b(4, 8), mp::Costs::uniform(4, 1, 2));
  EXPECT_EQ(s.makespan, 33.0);  // (M + P - 1)(F + B)
  for (const mp::RankStats& r : s.ranks) {
    EXPECT_EQ(r.busy, 24.0);
    EXPECT_EQ(r.idle, 9.0);
    EXPECT_DOUBLE_EQ(r.bubble_of_total, 3.0 / 11.0);   // (P-1)/(M+P-1)
    EXPECT_DOUBLE_EQ(r.bubble_over_ideal, 3.0 / 8.0);  // (P-1)/M
  }
}

TEST(Simulator, TimelineIsCompleteAndSequentialPerRank) {
  mp::Program p = mp::lower(mp::interleaved_1f1b(4, 8, 2));
  mp::Simulation s = mp::simulate(p, mp::Costs::uniform(8, 0.5, 1.0));
  for (int r = 0; r < 4; ++r) {
    ASSERT_EQ(s.timeline[r].size(), p.on(r).size());
    for (size_t i = 0; i < s.timeline[r].size(); ++i) {
      EXPECT_EQ(s.timeline[r][i].action, p.on(r)[i]);
      EXPECT_LE(s.timeline[r][i].start, s.timeline[r][i].end);
      if (i > 0) {
        EXPECT_LE(s.timeline[r][i - 1].end, s.timeline[r][i].start);
      }
    }
  }
}

TEST(Simulator, RejectsBadCostsAndInvalidPrograms) {
  mp::Program p = mp::gpipe(2, 2);
  EXPECT_THROW(mp::simulate(p, mp::Costs::uniform(3, 1, 1)), minipipe::Error);
  mp::Costs c = mp::Costs::uniform(2, 1, 1);
  c.forward[1] = -1;
  EXPECT_THROW(mp::simulate(p, c), minipipe::Error);
  c = mp::Costs::uniform(2, 1, 1);
  c.bandwidth = 0;
  EXPECT_THROW(mp::simulate(p, c), minipipe::Error);
  mp::Program bad = mp::parse_program("ranks 1\nrank 0: 0B0 0F0\n");
  try {
    mp::simulate(bad, mp::Costs::uniform(1, 1, 1));
    FAIL();
  } catch (const minipipe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[0B0]!"), std::string::npos);
  }
}

TEST(Simulator, GanttChartOfGPipe) {
  mp::Program p = mp::gpipe(2, 2);
  mp::Simulation s = mp::simulate(p, mp::Costs::uniform(2, 1, 2));
  EXPECT_EQ(mp::gantt(p, s),
            "time    (1 slot = 1)\n"
            "        0              5\n"
            "rank 0 |F0 F1 .  .  .  B0 -- B1 --\n"
            "rank 1 |.  F0 F1 B0 -- B1 -- .  .\n");
}

// The slot count is checked before it becomes an int: a tiny --slot made makespan / slot
// overflow the conversion (undefined behaviour; in practice a negative count and an empty chart).
TEST(Simulator, GanttRejectsTooManySlots) {
  mp::Program p = mp::gpipe(2, 2);
  mp::Simulation s = mp::simulate(p, mp::Costs::uniform(2, 1, 2));
  ASSERT_EQ(s.makespan, 9);
  for (double slot : {9.0 / 100001, 1e-12, 1e-300, 4.9e-324, std::nan("")}) {
    try {
      mp::gantt(p, s, slot);
      ADD_FAILURE() << "expected an error for slot " << slot;
    } catch (const minipipe::Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::isnan(slot) ? "slot must be" : "pass a larger slot"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(mp::gantt(p, s, 1e-4));  // 90 000 slots: within the limit
}

TEST(Simulator, GanttChartShowsChunksAndMessages) {
  mp::Costs c = mp::Costs::uniform(4, 1, 1);
  c.latency = 1;
  mp::Program p = mp::lower(mp::interleaved_1f1b(2, 2, 2));
  std::string chart = mp::gantt(p, mp::simulate(p, c));
  EXPECT_NE(chart.find("0F0"), std::string::npos);  // several chunks per rank: "chunk op mb"
  EXPECT_NE(chart.find("2F1"), std::string::npos);
  EXPECT_NE(chart.find(">>>"), std::string::npos);  // sending
  EXPECT_NE(chart.find("<<<"), std::string::npos);  // receiving
}
