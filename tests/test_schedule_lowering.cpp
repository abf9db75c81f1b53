// Tests of the lowering pass: where the sends and receives go, that chunks sharing a rank need
// none, that cost-aware lowering keeps the asynchronous timeline where blocking sends allow it,
// and that any costs (zeros, W, latency) still give a valid, deadlock-free program; and of
// lower_async, whose sends do not block and whose programs keep the asynchronous timeline.
#include <gtest/gtest.h>

#include <random>

#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/simulator.h"
#include "parallel/validator.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;
using mp::Op;

namespace {
std::string line(const mp::Program& p, int rank) {
  std::string s;
  for (const mp::Action& a : p.on(rank)) {
    if (!s.empty()) s += ' ';
    s += mp::to_string(a);
  }
  return s;
}
// A random schedule (the generators in turn, interleaved where it accepts M) and random costs:
// zeros, values that do not add up exactly, W, latency.
mp::Program random_program(std::mt19937& rng, int trial, bool with_zb) {
  const int P = 1 + static_cast<int>(rng() % 5), M = 1 + static_cast<int>(rng() % 10);
  const int v = 1 + static_cast<int>(rng() % 3);
  switch (trial % (with_zb ? 5 : 3)) {
    case 0: return mp::one_f_one_b(P, M);
    case 1: return mp::gpipe(P, M);
    case 3: return mp::zb_h1(P, M);
    case 4: return mp::forward_only(P, M);
    default: return mp::interleaved_accepts(P, M) ? mp::interleaved_1f1b(P, M, v) : mp::forward_only(P, M);
  }
}
mp::Costs random_costs(std::mt19937& rng, const mp::Program& p) {
  mp::Costs c = mp::Costs::uniform(p.num_chunks, 0, 0);
  for (int i = 0; i < p.num_chunks; ++i) {
    c.forward[static_cast<size_t>(i)] = rng() % 4 == 0 ? 0.0 : (rng() % 100) / 7.0;
    c.backward[static_cast<size_t>(i)] = rng() % 4 == 0 ? 0.0 : (rng() % 100) / 3.0;
    c.weight[static_cast<size_t>(i)] = rng() % 2 ? 0.0 : 0.1 * (rng() % 10);
  }
  c.latency = rng() % 2 ? 0.0 : 0.37;
  return c;
}
int comm_count(const mp::Program& p) {
  int n = 0;
  for (int r = 0; r < p.num_ranks; ++r)
    for (Op op : {Op::SEND_F, Op::RECV_F, Op::SEND_B, Op::RECV_B}) n += p.count(op, r);
  return n;
}
}  // namespace

TEST(Lowering, SendsFollowTheProducerReceivesComeAtTheSameMoment) {
  mp::Program p = mp::lower(mp::one_f_one_b(2, 2));
  EXPECT_EQ(line(p, 0), "0F0 0SEND_F0 0F1 0SEND_F1 0RECV_B0 0B0 0RECV_B1 0B1");
  // Rank 1 receives 1F1's input before sending 0B0's gradient, because in the reference run
  // 0F1's output (time 2) exists before 1B0's (time 3): the naive "send right after, receive
  // right before" order 1B0 1SEND_B0 1RECV_F1 deadlocks (see test_schedule_validator).
  EXPECT_EQ(line(p, 1), "1RECV_F0 1F0 1RECV_F1 1B0 1SEND_B0 1F1 1B1 1SEND_B1");
}

TEST(Lowering, ChunksSharingARankNeedNoMessages) {
  EXPECT_EQ(comm_count(mp::lower(mp::interleaved_1f1b(1, 4, 3))), 0);
  mp::Program p = mp::Program::empty(2, 3, 2);
  p.chunk_rank = {0, 0, 1};
  p.on(0) = {{0, Op::F, 0}, {1, Op::F, 0}, {0, Op::F, 1}, {1, Op::F, 1},
             {1, Op::B, 0}, {0, Op::B, 0}, {1, Op::B, 1}, {0, Op::B, 1}};
  p.on(1) = {{2, Op::F, 0}, {2, Op::B, 0}, {2, Op::F, 1}, {2, Op::B, 1}};
  mp::Program l = mp::lower(p);
  EXPECT_TRUE(mp::check(l).ok()) << mp::check(l).to_string();
  for (const auto& list : l.actions)
    for (const mp::Action& a : list)
      if (mp::is_comm(a.op)) {
        EXPECT_TRUE(a.chunk == 1 || a.chunk == 2) << mp::to_string(a);
      }
  EXPECT_EQ(comm_count(l), 8);  // 2 micro-batches x (SEND_F, RECV_F, SEND_B, RECV_B)
}

TEST(Lowering, ForwardOnlyHasOnlyForwardMessages) {
  mp::Program p = mp::lower(mp::forward_only(3, 4));
  EXPECT_EQ(line(p, 1),
            "1RECV_F0 1F0 1RECV_F1 1SEND_F0 1F1 1RECV_F2 1SEND_F1 1F2 1RECV_F3 "
            "1SEND_F2 1F3 1SEND_F3");
  for (int r = 0; r < 3; ++r) EXPECT_EQ(p.count(Op::SEND_B, r) + p.count(Op::RECV_B, r), 0);
}

// With free messages, placing each message where neither rank is mid-compute keeps the
// asynchronous (compute-only) timeline exactly: GPipe and 1F1B for any F:B, and interleaved.
TEST(Lowering, CostAwareLoweringKeepsTheAsynchronousTimeline) {
  for (double b : {1.0, 2.0, 3.0})
    for (int P = 1; P <= 8; ++P)
      for (int M = 1; M <= 16; ++M)
        for (const mp::Program& p : {mp::gpipe(P, M), mp::one_f_one_b(P, M)}) {
          const mp::Costs c = mp::Costs::uniform(P, 1, b);
          EXPECT_EQ(mp::simulate(mp::lower(p, c), c).makespan, mp::simulate(p, c).makespan)
              << "P=" << P << " M=" << M << " B=" << b;
        }
  mp::Program p = mp::interleaved_1f1b(4, 8, 2);
  const mp::Costs c = mp::Costs::uniform(8, 0.5, 1.0);  // F=1, B=2 per stage, halved per chunk
  mp::Simulation s = mp::simulate(mp::lower(p, c), c);
  EXPECT_EQ(s.makespan, mp::simulate(p, c).makespan);
  for (const mp::RankStats& r : s.ranks) EXPECT_DOUBLE_EQ(r.bubble_over_ideal, 0.5 * 3.0 / 8.0);
}

TEST(Lowering, AnyCostsGiveAValidProgram) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const mp::Program p = random_program(rng, trial, false);
    const mp::Costs c = random_costs(rng, p);
    mp::ValidationReport rep = mp::check(mp::lower(p, c));
    ASSERT_TRUE(rep.ok()) << "trial " << trial << "\n" << rep.to_string();
  }
  // A program with W: the W actions need no messages and keep their place.
  mp::Program w = mp::parse_program("ranks 2\nrank 0: 0F0 0B0 0W0\nrank 1: 1F0 1B0 1W0\n");
  mp::Program l = mp::lower(w, mp::Costs::uniform(2, 1, 1, 1));
  EXPECT_EQ(line(l, 0), "0F0 0SEND_F0 0RECV_B0 0B0 0W0");
  EXPECT_EQ(line(l, 1), "1RECV_F0 1F0 1B0 1SEND_B0 1W0");
}

TEST(Lowering, RejectsLoweredOrInvalidPrograms) {
  EXPECT_THROW(mp::lower(mp::lower(mp::gpipe(2, 2))), minipipe::Error);
  try {
    mp::lower(mp::parse_program("ranks 2\nrank 0: 0B0 0F0\nrank 1: 1F0 1B0\n"));
    FAIL();
  } catch (const minipipe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[0B0]!"), std::string::npos) << e.what();
  }
}

// ---- lower_async: sends that do not block ----

TEST(AsyncLowering, SendsRightAfterTheProducerReceivesRightBeforeTheConsumer) {
  mp::Program p = mp::lower_async(mp::one_f_one_b(2, 2));
  EXPECT_TRUE(p.async_sends);
  EXPECT_EQ(line(p, 0), "0F0 0SEND_F0 0F1 0SEND_F1 0RECV_B0 0B0 0RECV_B1 0B1");
  EXPECT_EQ(line(p, 1), "1RECV_F0 1F0 1B0 1SEND_B0 1RECV_F1 1F1 1B1 1SEND_B1");
  EXPECT_TRUE(mp::check(p).ok()) << mp::check(p).to_string();
  // The same order with blocking sends deadlocks: rank 1 sends 1B0's gradient while rank 0 still
  // sends 0F1's output (the case lower() orders the other way round, above).
  p.async_sends = false;
  const mp::ValidationReport rep = mp::check(p);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.to_string().find("deadlock"), std::string::npos) << rep.to_string();
  // Chunks on one rank need no messages; forward-only programs send forward only.
  EXPECT_EQ(comm_count(mp::lower_async(mp::interleaved_1f1b(1, 4, 3))), 0);
  mp::Program f = mp::lower_async(mp::forward_only(3, 2));
  EXPECT_EQ(line(f, 1), "1RECV_F0 1F0 1SEND_F0 1RECV_F1 1F1 1SEND_F1");
  // W needs no message and keeps its place.
  mp::Program w = mp::lower_async(mp::parse_program("ranks 2\nrank 0: 0F0 0B0 0W0\nrank 1: 1F0 1B0 1W0\n"));
  EXPECT_EQ(line(w, 0), "0F0 0SEND_F0 0RECV_B0 0B0 0W0");
  EXPECT_EQ(line(w, 1), "1RECV_F0 1F0 1B0 1SEND_B0 1W0");
}

// With sends that do not block, a rank waits only for the data its next compute needs: the
// lowered program runs exactly the compute-only program's timeline with asynchronous messages,
// for every schedule and any costs (zeros, W, latency, bandwidth) — which lower() reaches only
// where blocking sends allow it.
TEST(AsyncLowering, KeepsTheAsynchronousTimelineForAnyCosts) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 400; ++trial) {
    const mp::Program p = random_program(rng, trial, true);
    const int P = p.num_ranks;
    mp::Costs c = random_costs(rng, p);
    if (rng() % 2) {
      c.activation_bytes.assign(static_cast<size_t>(p.num_chunks), 64.0);
      c.bandwidth = 100.0;
    }
    const mp::Program l = mp::lower_async(p);
    const mp::ValidationReport rep = mp::check(l);
    ASSERT_TRUE(rep.ok()) << "trial " << trial << "\n" << rep.to_string();
    const mp::Simulation a = mp::simulate(l, c), ref = mp::simulate(p, c);
    ASSERT_DOUBLE_EQ(a.makespan, ref.makespan) << "trial " << trial << "\n" << mp::to_string(l);
    for (int r = 0; r < P; ++r) EXPECT_DOUBLE_EQ(a.ranks[static_cast<size_t>(r)].busy, ref.ranks[static_cast<size_t>(r)].busy);
  }
}

// The simulator's rule for a send that does not block, by hand: GPipe P = 2, M = 1, F = 1, B = 2,
// latency 0.5. 0F0 [0, 1] and its send at 1; 1RECV_F0 waits until 1.5; 1F0 [1.5, 2.5], 1B0
// [2.5, 4.5], its send at 4.5; 0RECV_B0 until 5; 0B0 [5, 7].
TEST(AsyncLowering, TheSimulatorTimesSendsAndReceivesByHand) {
  mp::Costs c = mp::Costs::uniform(2, 1, 2);
  c.latency = 0.5;
  const mp::Simulation s = mp::simulate(mp::lower_async(mp::gpipe(2, 1)), c);
  EXPECT_DOUBLE_EQ(s.makespan, 7.0);
  const auto& r0 = s.timeline[0];
  ASSERT_EQ(r0.size(), 4u);  // 0F0 0SEND_F0 0RECV_B0 0B0
  EXPECT_DOUBLE_EQ(r0[1].start, 1.0);
  EXPECT_DOUBLE_EQ(r0[1].end, 1.0);  // a send takes no time on its rank
  EXPECT_DOUBLE_EQ(r0[2].start, 4.5);
  EXPECT_DOUBLE_EQ(r0[2].end, 5.0);
  EXPECT_DOUBLE_EQ(r0[3].start, 5.0);
  const auto& r1 = s.timeline[1];  // 1RECV_F0 1F0 1B0 1SEND_B0
  EXPECT_DOUBLE_EQ(r1[0].start, 1.0);
  EXPECT_DOUBLE_EQ(r1[0].end, 1.5);
  EXPECT_DOUBLE_EQ(r1[1].start, 1.5);
  EXPECT_DOUBLE_EQ(r1[3].start, 4.5);
  // Blocking sends: the same messages keep both ranks busy for the latency (lower()'s program).
  EXPECT_DOUBLE_EQ(mp::simulate(mp::lower(mp::gpipe(2, 1), c), c).makespan, 7.0);
}

TEST(AsyncLowering, AWaitForAMessageThatComesAfterIsADeadlock) {
  // Rank 0 waits for 1B0's gradient before it sends 0F0's output, which 1B0 needs.
  const mp::Program p = mp::parse_program(
      "ranks 2\nasync_sends\nrank 0: 0F0 0RECV_B0 0SEND_F0 0B0\nrank 1: 1RECV_F0 1F0 1B0 1SEND_B0\n");
  EXPECT_TRUE(p.async_sends);
  const mp::ValidationReport rep = mp::check(p);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.to_string().find("rank 0 waits at 0RECV_B0 for 1SEND_B0 (rank 1 is stuck at 1RECV_F0)"),
            std::string::npos)
      << rep.to_string();
  // The file format keeps the flag.
  const mp::Program l = mp::lower_async(mp::one_f_one_b(3, 4));
  const mp::Program back = mp::parse_program(mp::to_string(l));
  EXPECT_TRUE(back.async_sends);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(line(back, r), line(l, r));
  EXPECT_THROW(mp::lower_async(l), minipipe::Error);
}
