// Exercise 6's grader: the student's checkpointed_forward / checkpointed_backward run a stage's
// micro-batches in 1F1B order (forwards of later micro-batches between a micro-batch's F and B, so
// the random context moves on). Checked against the single-device full-batch step (gradients to
// 1e-12 in float64, dropout on: the masks must replay), and by the bytes each stash holds,
// measured on a memory account next to the executor's own figures (Checkpoint::Never / Always).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "exercise.h"
#include "parallel/executor.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "tests/pipeline_models.h"

namespace {

using namespace minipipe;
using namespace minipipe::parallel;
using namespace minipipe::test_util;

constexpr int64_t kRows = 8;
constexpr int kM = 4;
constexpr uint64_t kStep = 2, kModelSeed = 11, kDataSeed = 12, kDropoutSeed = 13;

struct Stage {
  std::shared_ptr<nn::Sequential> model;
  std::shared_ptr<RandomContext> random;
};

Stage make(double dropout) {
  Stage s{build_model(ModelKind::Mlp, DType::Float64, dropout, kModelSeed), std::make_shared<RandomContext>(kDropoutSeed)};
  s.model->set_random_context(s.random);
  return s;
}

// What the student's functions did over one step.
struct StudentRun {
  std::vector<int64_t> stash_bytes;  // per micro-batch, measured after its forward
  std::vector<Tensor> input_grads;   // per micro-batch: dL/dx
  bool output_had_graph = false;
  bool stash_released = true;
  std::vector<Tensor> outputs;
};

// Rank 0's order in 1F1B over 3 ranks and 4 micro-batches: F0 F1 F2 B0 F3 B1 B2 B3.
StudentRun run_checkpointed(Stage& s, const Batch& b) {
  StudentRun run;
  const int64_t rows = kRows / kM;
  std::vector<exercises::Stash> stash(kM);
  std::vector<Tensor> grad_out(kM);
  run.stash_bytes.assign(kM, 0);
  run.input_grads.resize(kM);
  run.outputs.resize(kM);
  auto account = std::make_shared<MemoryAccount>();
  const Program order = one_f_one_b(3, kM);
  for (const Action& a : order.on(0)) {
    const int m = a.microbatch;
    if (a.op == Op::F) {
      s.random->step = kStep;  // as the executor does before every forward
      s.random->sample_offset = m * rows;
      const Tensor x = ops::narrow(b.x, 0, m * rows, rows);
      const int64_t before = account->live();
      Tensor y;
      {
        MemoryAccountGuard guard(account);
        y = exercises::checkpointed_forward(*s.model, x, stash[static_cast<size_t>(m)]);
      }
      MP_CHECK(y.defined(), "checkpointed_forward returned an undefined tensor");
      run.output_had_graph = run.output_had_graph || y.requires_grad();
      // The loss head: dL/dy of this micro-batch's loss, scaled by 1/M (the executor's rule).
      Tensor yl = from_vector(y.to_vector<double>(), y.sizes()).set_requires_grad(true);
      (cross_entropy(yl, ops::narrow(b.y, 0, m * rows, rows)) * (1.0 / kM)).backward();
      grad_out[static_cast<size_t>(m)] = yl.grad();
      run.outputs[static_cast<size_t>(m)] = yl.detach();
      y = Tensor();
      run.stash_bytes[static_cast<size_t>(m)] = account->live() - before;
    } else {
      run.input_grads[static_cast<size_t>(m)] =
          exercises::checkpointed_backward(*s.model, stash[static_cast<size_t>(m)], grad_out[static_cast<size_t>(m)]);
      run.stash_released = run.stash_released && !stash[static_cast<size_t>(m)].input.defined();
    }
  }
  return run;
}

// The single-device step on the whole batch, no checkpointing; x's gradient too.
Tensor full_batch(Stage& s, const Batch& b) {
  s.random->step = kStep;
  s.random->sample_offset = 0;
  Tensor x = b.x.detach();
  x.set_requires_grad(true);
  cross_entropy(s.model->forward(x), b.y).backward();
  return x.grad();
}

void expect_equivalent(double dropout) {
  const Batch b = make_batch(ModelKind::Mlp, DType::Float64, kRows, kDataSeed);
  Stage ref = make(dropout), got = make(dropout);
  const Tensor gx = full_batch(ref, b);
  const StudentRun run = run_checkpointed(got, b);
  const std::string hint = dropout > 0 ? " — with dropout on: does the recomputation draw the forward's masks? Other "
                                         "micro-batches' forwards moved the random context since; put back its step "
                                         "and sample_offset from the stash"
                                       : "";
  const auto want = grads_by_name(*ref.model), have = grads_by_name(*got.model);
  for (const auto& [name, w] : want) {
    ASSERT_TRUE(have.at(name).defined()) << "parameter " << name << " has no gradient: did the backward run through the stage?";
    const double d = rel_diff(have.at(name), w);
    if (d > 1e-12) {
      ADD_FAILURE() << "gradient of " << name << " differs from the full batch's by " << d << " (relative)" << hint;
      break;  // one parameter is enough to act on
    }
  }
  for (int m = 0; m < kM; ++m) {
    const Tensor& g = run.input_grads[static_cast<size_t>(m)];
    ASSERT_TRUE(g.defined()) << "checkpointed_backward returned no dL/dx for micro-batch " << m
                             << ": make the recomputation's input a leaf that requires grad";
    const Tensor want_g = ops::narrow(gx, 0, m * (kRows / kM), kRows / kM);
    ASSERT_EQ(shape_str(g.sizes()), shape_str(want_g.sizes())) << "dL/dx of micro-batch " << m << " should have x's shape";
    const double d = rel_diff(g, want_g);
    if (d > 1e-12) {
      ADD_FAILURE() << "dL/dx of micro-batch " << m << " differs from the full batch's by " << d << " (relative)" << hint;
      return;
    }
  }
}

TEST(Checkpointing, TheForwardKeepsNoGraphAndComputesTheOutput) {
  const Batch b = make_batch(ModelKind::Mlp, DType::Float64, kRows, kDataSeed);
  Stage ref = make(0.3), got = make(0.3);
  const StudentRun run = run_checkpointed(got, b);
  EXPECT_FALSE(run.output_had_graph) << "checkpointed_forward's output requires grad: the forward recorded a graph "
                                        "(run it under NoGradGuard; the backward recomputes it)";
  for (int m = 0; m < kM; ++m) {
    ref.random->step = kStep;
    ref.random->sample_offset = m * (kRows / kM);
    NoGradGuard no_grad;
    const Tensor want = ref.model->forward(ops::narrow(b.x, 0, m * (kRows / kM), kRows / kM));
    EXPECT_LE(rel_diff(run.outputs[static_cast<size_t>(m)], want), 1e-14)
        << "micro-batch " << m << ": checkpointed_forward's output differs from stage.forward(x)";
  }
}

TEST(Checkpointing, SameGradientsAsTheFullBatchWithoutDropout) { expect_equivalent(0.0); }
TEST(Checkpointing, SameGradientsAsTheFullBatchWithDropoutMasksReplayed) { expect_equivalent(0.3); }

// What each micro-batch holds from F to B, measured on a memory account: at most its input's
// bytes (a handle on the input costs nothing; a copy costs its size), against the executor's
// figures for the same stage without checkpointing (the whole graph) and with it.
TEST(StashBytes, AtMostTheInputAndFarBelowTheGraph) {
  const Batch b = make_batch(ModelKind::Mlp, DType::Float64, kRows, kDataSeed);
  Stage got = make(0.3);
  const StudentRun run = run_checkpointed(got, b);
  EXPECT_TRUE(run.stash_released) << "after checkpointed_backward the stash still holds its input: release it "
                                     "(stash = Stash{}), the executor frees a micro-batch's stash at its B";

  auto executor_stash = [&](Checkpoint mode) {
    Stage s = make(0.3);
    const Program p = lower(one_f_one_b(1, kM));
    MicroBatches mb;
    for (int m = 0; m < kM; ++m) {
      mb.rows.push_back(kRows / kM);
      mb.offsets.push_back(m * (kRows / kM));
      mb.inputs.push_back(ops::narrow(b.x, 0, m * (kRows / kM), kRows / kM));
      mb.targets.push_back(ops::narrow(b.y, 0, m * (kRows / kM), kRows / kM));
    }
    std::vector<int64_t> bytes;
    run_ranks(1, [&](RankContext& ctx) {
      Executor ex(p, 0, {Chunk{0, s.model, s.random}}, ctx.comm, mode, {TensorSpec{}});
      ex.train_step(mb, loss_of(ModelKind::Mlp), kStep);
      bytes = ex.stash_bytes();
    });
    return bytes;
  };
  const std::vector<int64_t> graph = executor_stash(Checkpoint::Never), recompute = executor_stash(Checkpoint::Always);
  const int64_t input_bytes = static_cast<int64_t>((kRows / kM) * b.x.size(1) * 8);
  for (int m = 0; m < kM; ++m) {
    const int64_t mine = run.stash_bytes[static_cast<size_t>(m)];
    EXPECT_LE(mine, recompute[static_cast<size_t>(m)] + input_bytes)
        << "micro-batch " << m << ": your stash holds " << mine << " bytes after the forward; a checkpointed stage keeps "
        << "only its input (" << input_bytes << " bytes if copied, 0 as a handle; the executor's checkpointed stash: "
        << recompute[static_cast<size_t>(m)] << " bytes). Without checkpointing the graph holds "
        << graph[static_cast<size_t>(m)] << " bytes: is the forward recording a graph, or keeping its output?";
    EXPECT_LT(mine, graph[static_cast<size_t>(m)])
        << "micro-batch " << m << ": your stash (" << mine << " bytes) is no smaller than the whole graph's ("
        << graph[static_cast<size_t>(m)] << " bytes, the executor without checkpointing)";
    if (testing::Test::HasFailure()) return;  // the first micro-batch is enough to act on
  }
}

}  // namespace
