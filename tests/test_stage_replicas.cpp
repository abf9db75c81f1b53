// Stage replicas (PipeDream's 1F1B-RR) in the schedule IR: the generator's placement (micro-batch
// m of stage s on replica m mod R_s), every configuration valid before and after lowering, the
// pace the replicas buy in the simulator against its closed form, in-flight limits, the program
// file round trip and the validator's placement errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/simulator.h"
#include "parallel/validator.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;
using mp::Op;

namespace {

// Every replica vector over P stages with R_s in 1..3.
std::vector<std::vector<int>> replica_sets(int P) {
  std::vector<std::vector<int>> out = {{}};
  for (int s = 0; s < P; ++s) {
    std::vector<std::vector<int>> next;
    for (const auto& v : out)
      for (int R = 1; R <= 3; ++R) {
        next.push_back(v);
        next.back().push_back(R);
      }
    out = std::move(next);
  }
  return out;
}

}  // namespace

TEST(StageReplicas, WithoutReplicasItIsThePlainSchedule) {
  for (int P = 1; P <= 4; ++P)
    for (int M = 1; M <= 6; ++M) {
      const std::vector<int> ones(static_cast<size_t>(P), 1);
      EXPECT_EQ(mp::replicated("1f1b", ones, M).actions, mp::one_f_one_b(P, M).actions);
      EXPECT_EQ(mp::replicated("gpipe", ones, M).actions, mp::gpipe(P, M).actions);
      EXPECT_FALSE(mp::replicated("1f1b", ones, M).replicated());
    }
}

TEST(StageReplicas, MicroBatchMOfStageSRunsOnReplicaMModRs) {
  const mp::Program p = mp::replicated("1f1b", {2, 1, 3}, 7);
  ASSERT_EQ(p.num_ranks, 6);
  EXPECT_EQ(p.chunk_replicas, (std::vector<std::vector<int>>{{0, 1}, {2}, {3, 4, 5}}));
  for (int r = 0; r < p.num_ranks; ++r)
    for (const mp::Action& a : p.on(r)) {
      const auto& reps = p.chunk_replicas[static_cast<size_t>(a.chunk)];
      EXPECT_EQ(r, reps[static_cast<size_t>(a.microbatch) % reps.size()]) << mp::to_string(a) << " on rank " << r;
    }
  // Every (stage, micro-batch) runs F and B exactly once, somewhere.
  for (int s = 0; s < 3; ++s)
    for (int m = 0; m < 7; ++m) {
      int f = 0, b = 0;
      for (const auto& list : p.actions)
        for (const mp::Action& a : list) {
          f += a.chunk == s && a.microbatch == m && a.op == Op::F;
          b += a.chunk == s && a.microbatch == m && a.op == Op::B;
        }
      EXPECT_EQ(f, 1);
      EXPECT_EQ(b, 1);
    }
}

TEST(StageReplicas, EveryConfigurationIsValidBeforeAndAfterLowering) {
  int checked = 0;
  for (int P = 1; P <= 4; ++P)
    for (const auto& reps : replica_sets(P))
      for (int M = *std::max_element(reps.begin(), reps.end()); M <= 9; ++M)
        for (const char* s : {"1f1b", "gpipe", "forward"}) {
          const mp::Program p = mp::replicated(s, reps, M);
          const mp::ValidationReport before = mp::check(p);
          ASSERT_TRUE(before.ok()) << s << " M=" << M << "\n" << before.to_string();
          const mp::Program low = mp::lower(p);
          const mp::ValidationReport after = mp::check(low);
          ASSERT_TRUE(after.ok()) << s << " M=" << M << "\n" << after.to_string();
          ++checked;
        }
  EXPECT_GT(checked, 1000);
}

// 1F1B-RR's point: replicate the slow stage and the pipeline moves at the pace of
// max_s (F_s + B_s) / R_s per micro-batch instead of max_s (F_s + B_s).
TEST(StageReplicas, ReplicatingTheSlowStageSetsThePaceToItsShare) {
  const int M = 24;
  mp::Costs c;
  c.forward = {2.0, 1.0};
  c.backward = {4.0, 2.0};
  const double plain = mp::simulate(mp::one_f_one_b(2, M), c).makespan;
  const double rr = mp::simulate(mp::replicated("1f1b", {2, 1}, M), c).makespan;
  // Plain: stage 0 takes 6 per micro-batch, so at least 6 M. Replicated: each of its two replicas
  // takes 6 per micro-batch for M / 2 of them, stage 1 takes 3 per micro-batch: 3 M plus the fill.
  EXPECT_GE(plain, 6.0 * M);
  EXPECT_GE(rr, 3.0 * M);
  EXPECT_LE(rr, 3.0 * M + 6.0 + 3.0 + 6.0);  // the pace, plus one micro-batch's fill and drain
  EXPECT_LT(rr, 0.6 * plain);
}

TEST(StageReplicas, AReplicaHoldsAtMostItsShareOfTheMicroBatchesInFlight) {
  // Replica of stage s: at most ceil(W_s / R_s) in flight, W_s = ranks from stage s on.
  const std::vector<int> reps = {2, 1, 1};
  const mp::Simulation sim = mp::simulate(mp::replicated("1f1b", reps, 12), mp::Costs::uniform(3, 1.0, 2.0));
  ASSERT_EQ(sim.ranks.size(), 4u);
  EXPECT_EQ(sim.ranks[0].peak_inflight, 2);  // ceil(4 / 2)
  EXPECT_EQ(sim.ranks[1].peak_inflight, 2);
  EXPECT_EQ(sim.ranks[2].peak_inflight, 2);  // stage 1: W = 2
  EXPECT_EQ(sim.ranks[3].peak_inflight, 1);  // the last stage: F then B at once
  // GPipe: every replica holds all of its own micro-batches.
  const mp::Simulation g = mp::simulate(mp::replicated("gpipe", reps, 12), mp::Costs::uniform(3, 1.0, 2.0));
  EXPECT_EQ(g.ranks[0].peak_inflight, 6);
  EXPECT_EQ(g.ranks[3].peak_inflight, 12);
}

TEST(StageReplicas, ProgramFilesKeepTheReplicas) {
  const mp::Program p = mp::lower(mp::replicated("1f1b", {1, 2}, 4));
  const std::string text = mp::to_string(p);
  EXPECT_NE(text.find("replicas 0 1/2"), std::string::npos) << text;
  const mp::Program q = mp::parse_program(text);
  EXPECT_EQ(q.chunk_replicas, p.chunk_replicas);
  EXPECT_EQ(q.chunk_rank, p.chunk_rank);
  EXPECT_EQ(q.actions, p.actions);
  EXPECT_THROW(mp::parse_program("ranks 2\nreplicas 0/x\n"), minipipe::Error);
  EXPECT_THROW(mp::parse_program("ranks 2\nplacement 0 1\nreplicas 0 1\n"), minipipe::Error);
}

TEST(StageReplicas, TheValidatorNamesAMicroBatchOnTheWrongReplica) {
  mp::Program p = mp::replicated("1f1b", {2, 1}, 4);
  // Move micro-batch 1 of stage 0 (replica rank 1) onto rank 0.
  auto& r1 = p.on(1);
  std::vector<mp::Action> moved;
  for (const mp::Action& a : r1)
    if (a.microbatch == 1) moved.push_back(a);
  std::erase_if(r1, [](const mp::Action& a) { return a.microbatch == 1; });
  for (const mp::Action& a : moved) p.on(0).push_back(a);
  const mp::ValidationReport rep = mp::check(p);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.to_string().find("micro-batch 1 of chunk 0 runs on rank 1"), std::string::npos) << rep.to_string();

  mp::Program shared = mp::replicated("1f1b", {2, 1}, 4);
  shared.chunk_replicas[1] = {2, 1};  // rank 1 already holds chunk 0
  const mp::ValidationReport bad = mp::check(shared);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.to_string().find("rank 1 is a replica of chunk 0 and of chunk 1"), std::string::npos)
      << bad.to_string();
  EXPECT_THROW(mp::replicated("1f1b", {3, 1}, 2), minipipe::Error);         // a replica would idle
  EXPECT_THROW(mp::replicated("interleaved", {2, 1}, 4), minipipe::Error);  // one chunk per rank
}
