// Exercise 4's grader: the student's naive_lowering must reproduce the hand-written deadlock of
// examples/programs/naive_1f1b_deadlock.txt and hang (in the validator's deadlock run, which never
// hangs itself) exactly where 1F1B needs it to; deadlock_free_lowering must pass the validator for
// every generator, P and M, keep each rank's compute order, and train over the local communicator
// (with a communicator timeout, so a hang would be a named failure) as one device does.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "exercise.h"
#include "parallel/executor.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/partition.h"
#include "parallel/validator.h"
#include "tests/pipeline_models.h"

namespace {

using namespace minipipe;
using namespace minipipe::parallel;

std::string listing(const Program& p) {
  std::ostringstream s;
  for (int r = 0; r < static_cast<int>(p.actions.size()); ++r) {
    s << "  rank " << r << ":";
    for (const Action& a : p.on(r)) s << " " << to_string(a);
    s << "\n";
  }
  return s.str();
}

bool static_rules_hold(const ValidationReport& r) {
  for (Rule rule : {Rule::Placement, Rule::Count, Rule::ForwardBeforeBackward, Rule::Dependency, Rule::Matching})
    if (r.has(rule)) return false;
  return true;
}

// ---- the naive placement ----

TEST(NaiveLowering, ReproducesTheHandWrittenDeadlock) {
  const Program want = read_program(std::string(MINIPIPE_SOURCE_DIR) + "/examples/programs/naive_1f1b_deadlock.txt");
  const Program got = exercises::naive_lowering(one_f_one_b(2, 2));
  EXPECT_EQ(got.actions, want.actions) << "naive_lowering(one_f_one_b(2, 2)) should be the program in "
                                          "examples/programs/naive_1f1b_deadlock.txt:\n"
                                       << listing(want) << "yours is:\n" << listing(got);
}

TEST(NaiveLowering, GPipeSurvivesIt) {
  for (int P = 1; P <= 4; ++P)
    for (int M = 1; M <= 6; ++M) {
      const Program p = exercises::naive_lowering(gpipe(P, M));
      const ValidationReport r = check(p);
      ASSERT_TRUE(r.ok()) << "naive_lowering(gpipe(" << P << ", " << M << ")) should pass the validator: "
                          << "every rank sends and receives in the same order\n" << r.to_string();
    }
}

TEST(NaiveLowering, OneFOneBHangsInTheDeadlockRun) {
  for (int P = 2; P <= 4; ++P)
    for (int M = 2; M <= 6; ++M) {
      const Program p = exercises::naive_lowering(one_f_one_b(P, M));
      const ValidationReport r = check(p);
      EXPECT_TRUE(static_rules_hold(r)) << "naive_lowering(one_f_one_b(" << P << ", " << M
                                        << ")) breaks a rule other than Deadlock: the messages themselves are wrong\n"
                                        << r.to_string();
      EXPECT_TRUE(r.has(Rule::Deadlock)) << "naive_lowering(one_f_one_b(" << P << ", " << M
                                         << ")) should deadlock under blocking send/recv; the validator ran it to the end:\n"
                                         << step_grid(p);
      if (testing::Test::HasFailure()) return;  // the first failing case is enough to act on
    }
}

// ---- the lowering that cannot hang ----

struct Case {
  std::string name;
  Program program;
};

std::vector<Case> schedules() {
  std::vector<Case> out;
  for (int P = 1; P <= 4; ++P)
    for (int M = 1; M <= 8; ++M) {
      const std::string pm = "(P=" + std::to_string(P) + ", M=" + std::to_string(M);
      out.push_back({"gpipe" + pm + ")", gpipe(P, M)});
      out.push_back({"one_f_one_b" + pm + ")", one_f_one_b(P, M)});
      out.push_back({"forward_only" + pm + ")", forward_only(P, M)});
      out.push_back({"zb_h1" + pm + ")", zb_h1(P, M)});
      out.push_back({"zb_h2" + pm + ")", zb_h2(P, M)});
      if (interleaved_accepts(P, M)) out.push_back({"interleaved_1f1b" + pm + ", v=2)", interleaved_1f1b(P, M, 2)});
      if (M >= 2) {  // PipeDream's 1F1B-RR: stage 0 on two ranks (P+1 ranks in all)
        std::vector<int> replicas(static_cast<size_t>(P), 1);
        replicas[0] = 2;
        out.push_back({"replicated 1f1b, stage 0 on 2 ranks" + pm + ")", replicated("1f1b", replicas, M)});
      }
    }
  return out;
}

TEST(DeadlockFreeLowering, EveryScheduleValidates) {
  int failures = 0;
  for (const Case& c : schedules()) {
    const Program p = exercises::deadlock_free_lowering(c.program);
    const ValidationReport r = check(p);
    if (!r.ok() && ++failures <= 3)
      ADD_FAILURE() << "deadlock_free_lowering(" << c.name << ") fails the validator:\n" << r.to_string();
    if (r.ok() && !p.has_comm() && lower(c.program).has_comm())
      ADD_FAILURE() << "deadlock_free_lowering(" << c.name << ") added no SEND/RECV actions";
  }
  EXPECT_EQ(failures, 0) << failures << " lowered schedules fail the validator (the first 3 are shown)";
}

TEST(DeadlockFreeLowering, KeepsEveryRanksComputeOrder) {
  for (const Case& c : schedules()) {
    const Program p = exercises::deadlock_free_lowering(c.program);
    ASSERT_EQ(p.actions.size(), c.program.actions.size()) << c.name << ": a list per rank";
    for (size_t r = 0; r < p.actions.size(); ++r) {
      std::vector<Action> compute;
      for (const Action& a : p.actions[r])
        if (is_compute(a.op)) compute.push_back(a);
      ASSERT_EQ(compute, c.program.actions[r]) << "deadlock_free_lowering(" << c.name << ") changed rank " << r
                                               << "'s compute order: the schedule decides it, the lowering only adds messages\n"
                                               << listing(p);
    }
  }
}

TEST(DeadlockFreeLowering, AddsExactlyTheMessagesTheProjectsLoweringAdds) {
  for (const Case& c : schedules()) {
    const Program p = exercises::deadlock_free_lowering(c.program), ref = lower(c.program);
    for (int r = 0; r < p.num_ranks; ++r)
      for (Op op : {Op::SEND_F, Op::RECV_F, Op::SEND_B, Op::RECV_B})
        ASSERT_EQ(p.count(op, r), ref.count(op, r))
            << "deadlock_free_lowering(" << c.name << "): rank " << r << " has " << p.count(op, r) << " " << op_name(op)
            << " actions, it needs " << ref.count(op, r) << "\n" << listing(p);
  }
}

// The lowered 1F1B trains over the local communicator (ranks are threads), as one device does. A
// wait longer than 20 s is a named timeout, not a hung test.
TEST(DeadlockFreeLowering, TrainsOverTheLocalCommunicatorAsOneDeviceDoes) {
  using namespace minipipe::test_util;
  const int P = 3, M = 4;
  const Program p = exercises::deadlock_free_lowering(one_f_one_b(P, M));
  const ValidationReport report = check(p);
  ASSERT_TRUE(report.ok()) << "fix the validator's findings first:\n" << report.to_string();

  Reference ref(ModelKind::Mlp, DType::Float64, 0.0, 7, 0);
  const Batch batch = make_batch(ModelKind::Mlp, DType::Float64, 8, 3);
  const double want_loss = ref.forward_backward(batch, loss_of(ModelKind::Mlp), 0);

  auto model = build_model(ModelKind::Mlp, DType::Float64, 0.0, 7);
  const Partition cut = uniform(static_cast<int>(model->size()), P);
  std::vector<TensorSpec> specs(static_cast<size_t>(P));
  {
    NoGradGuard no_grad;
    Tensor x = batch.x;
    for (int c = 0; c < P; ++c) {
      specs[static_cast<size_t>(c)] = {Shape(x.sizes().begin() + 1, x.sizes().end()), x.dtype()};
      x = model->slice(cut.begin(c), cut.end(c))->forward(x);
    }
  }
  MicroBatches mb;
  for (int m = 0; m < M; ++m) {
    mb.rows.push_back(2);
    mb.offsets.push_back(2 * m);
    mb.inputs.push_back(ops::narrow(batch.x, 0, 2 * m, 2));
    mb.targets.push_back(ops::narrow(batch.y, 0, 2 * m, 2));
  }
  double loss_sum = 0;
  run_ranks(P, [&](RankContext& ctx) {
    const int r = ctx.comm.rank();
    Chunk ch{r, model->slice(cut.begin(r), cut.end(r)), std::make_shared<RandomContext>(0)};
    ch.module->set_random_context(ch.random);
    Executor ex(p, r, {ch}, ctx.comm, Checkpoint::Never, specs);
    const double l = ex.train_step(mb, loss_of(ModelKind::Mlp), 0);
    if (r == P - 1) loss_sum = l;
  }, /*timeout=*/20);
  EXPECT_NEAR(loss_sum / M, want_loss, 1e-12) << "the pipelined loss differs from one device's";
  const auto want = grads_by_name(*ref.model), got = grads_by_name(*model);
  for (const auto& [name, g] : want) {
    ASSERT_TRUE(got.at(name).defined()) << name << " has no gradient after the pipelined step";
    EXPECT_LE(rel_diff(got.at(name), g), 1e-12) << name << ": the pipelined gradient differs from one device's";
  }
}

}  // namespace
