// The asynchronous pipelines run end to end on `local` rank threads against the single-process
// reference of their update rules (tests/async_reference.h): PipeDream with weight stashing (each
// stage's gradient at its own delayed weights), with vertical sync, without stashing (the mismatch
// stashing removes, shown), and 2BW (one window of delay) — P in {2, 3, 4}, three steps of 8
// micro-batches, float64 within 1e-12 relative, dropout on, activation checkpointing replaying the
// stashed weights. Then the versions each rank held, and every combination the Pipe refuses.
#include <gtest/gtest.h>

#include "async_reference.h"
#include "parallel/grid.h"

namespace minipipe::parallel {
namespace {

using test_util::AsyncReference;
using test_util::AsyncRule;
using test_util::Batch;
using test_util::ModelKind;

constexpr uint64_t kSeed = 7, kDropoutSeed = 99;
constexpr double kDropout = 0.2;
constexpr int kSteps = 3;

struct AsyncRun {
  std::vector<double> losses;                      // per step, as rank 0 saw it
  std::shared_ptr<nn::Sequential> model;           // every stage's newest weights after the run
  std::vector<int> peak_versions;                  // per rank
  std::vector<int64_t> peak_version_bytes, stage_bytes;  // per rank
};

PipeOptions options_of(const AsyncRule& a, ModelKind kind, int M, Checkpoint ckpt) {
  PipeOptions o;
  o.stages = a.stages;
  o.microbatches = M;
  o.schedule = a.schedule;
  o.window = a.two_bw() ? a.window : 0;
  o.weight_stashing = a.stashing;
  o.vertical_sync = a.vertical_sync;
  o.checkpoint = ckpt;
  o.seed = kDropoutSeed;
  o.loss = test_util::loss_of(kind);
  return o;
}

Batch batch_of(ModelKind kind, DType dtype, int M, int step) {
  return test_util::make_batch(kind, dtype, 2 * M, 100 + static_cast<uint64_t>(step));
}

AsyncRun run_pipeline(const AsyncRule& a, ModelKind kind, DType dtype, int M, Checkpoint ckpt = Checkpoint::Never) {
  const int P = a.stages;
  AsyncRun out;
  out.model = test_util::build_model(kind, dtype, kDropout, kSeed);
  out.losses.assign(kSteps, 0);
  out.peak_versions.assign(static_cast<size_t>(P), 0);
  out.peak_version_bytes.assign(static_cast<size_t>(P), 0);
  out.stage_bytes.assign(static_cast<size_t>(P), 0);
  test_util::run_ranks(P, [&](RankContext& ctx) {
    Pipe pipe(out.model, ctx.comm, options_of(a, kind, M, ckpt));
    optim::AdamW opt(pipe.parameters(), optim::AdamWOptions{.lr = 1e-2});
    pipe.set_optimizer(opt);
    for (int k = 0; k < kSteps; ++k) {
      const Batch b = batch_of(kind, dtype, M, k);
      const double loss = pipe.train_step(b.x, b.y);
      if (ctx.comm.rank() == 0) out.losses[static_cast<size_t>(k)] = loss;
    }
    const size_t r = static_cast<size_t>(ctx.comm.rank());
    out.peak_versions[r] = pipe.peak_weight_versions();
    out.peak_version_bytes[r] = pipe.peak_weight_version_bytes();
    for (const Tensor& p : pipe.parameters()) out.stage_bytes[r] += static_cast<int64_t>(p.nbytes());
    EXPECT_EQ(pipe.updates(), kSteps * (a.two_bw() ? M / a.window : M));
  });
  return out;
}

std::vector<double> run_reference(AsyncReference& ref, ModelKind kind, DType dtype, int M) {
  std::vector<double> losses;
  for (int k = 0; k < kSteps; ++k)
    losses.push_back(ref.call(batch_of(kind, dtype, M, k), M, test_util::loss_of(kind), static_cast<uint64_t>(k)));
  return losses;
}

// The largest relative difference over every parameter.
double weight_diff(const nn::Module& a, const nn::Module& b) {
  double worst = 0;
  const auto pb = b.named_parameters();
  for (const auto& [name, t] : a.named_parameters())
    for (const auto& [other, u] : pb)
      if (other == name) worst = std::max(worst, test_util::rel_diff(t, u));
  return worst;
}

void expect_matches(const AsyncRule& a, ModelKind kind, DType dtype, int M, Checkpoint ckpt = Checkpoint::Never) {
  const double tol = test_util::tolerance(dtype);
  AsyncReference ref(a, kind, dtype, kDropout, kSeed, kDropoutSeed);
  const std::vector<double> want = run_reference(ref, kind, dtype, M);
  const AsyncRun got = run_pipeline(a, kind, dtype, M, ckpt);
  for (int k = 0; k < kSteps; ++k)
    EXPECT_NEAR(got.losses[static_cast<size_t>(k)], want[static_cast<size_t>(k)], tol * std::abs(want[static_cast<size_t>(k)]))
        << "step " << k;
  EXPECT_LT(weight_diff(*got.model, *ref.model), tol);
  // And the weights really moved: a run that never stepped would fail here.
  const auto untrained = test_util::build_model(kind, dtype, kDropout, kSeed);
  EXPECT_GT(weight_diff(*got.model, *untrained), 1e-3);
}

std::string name_of(const AsyncRule& a) {
  return a.schedule + " P=" + std::to_string(a.stages) + (a.two_bw() ? " W=" + std::to_string(a.window) : "") +
         (a.stashing ? "" : " no-stash") + (a.vertical_sync ? " vsync" : "");
}

TEST(AsyncPipeline, PipeDreamWithStashingMatchesItsUpdateRule) {
  for (int P : {2, 3, 4}) {
    const AsyncRule a{"pipedream", P};
    SCOPED_TRACE(name_of(a));
    expect_matches(a, ModelKind::Mlp, DType::Float64, 8);
  }
}

TEST(AsyncPipeline, VerticalSyncMatchesItsUpdateRule) {
  for (int P : {2, 3, 4}) {
    const AsyncRule a{"pipedream", P, 1, true, true};
    SCOPED_TRACE(name_of(a));
    expect_matches(a, ModelKind::Mlp, DType::Float64, 8);
  }
}

TEST(AsyncPipeline, TwoBWMatchesTheOneStepDelay) {
  for (const auto& [P, M, W] : std::vector<std::tuple<int, int, int>>{{2, 8, 4}, {3, 8, 4}, {4, 8, 4}, {4, 6, 3},
                                                                      {3, 8, 8}, {2, 8, 1}, {4, 2, 2}}) {
    const AsyncRule a{"2bw", P, W};
    SCOPED_TRACE(name_of(a) + " M=" + std::to_string(M));
    expect_matches(a, ModelKind::Mlp, DType::Float64, M);
  }
}

TEST(AsyncPipeline, TransformerBlocksAndFloat32) {
  expect_matches({"pipedream", 2}, ModelKind::Gpt, DType::Float64, 8);
  expect_matches({"2bw", 3, 4}, ModelKind::Gpt, DType::Float64, 8);
  expect_matches({"pipedream", 3}, ModelKind::Mlp, DType::Float32, 8);
}

TEST(AsyncPipeline, CheckpointingRecomputesWithTheStashedWeights) {
  // The recomputed forward in B must read the version its F read, not the newest: the reference
  // (no checkpointing) is matched only if it does.
  for (Checkpoint ckpt : {Checkpoint::Always, Checkpoint::ExceptLast}) {
    SCOPED_TRACE(checkpoint_name(ckpt));
    expect_matches({"pipedream", 3}, ModelKind::Mlp, DType::Float64, 8, ckpt);
    expect_matches({"pipedream", 3, 1, true, true}, ModelKind::Mlp, DType::Float64, 8, ckpt);
    expect_matches({"2bw", 3, 4}, ModelKind::Mlp, DType::Float64, 8, ckpt);
  }
}

TEST(AsyncPipeline, WithoutStashingBackwardReadsOtherWeightsThanForward) {
  for (int P : {2, 3, 4}) {
    const AsyncRule no_stash{"pipedream", P, 1, false};
    SCOPED_TRACE(name_of(no_stash));
    expect_matches(no_stash, ModelKind::Mlp, DType::Float64, 8);  // its own rule, exactly
    // ... which is not PipeDream's: the forward/backward weight mismatch changes the training.
    AsyncReference stashed({"pipedream", P}, ModelKind::Mlp, DType::Float64, kDropout, kSeed, kDropoutSeed);
    run_reference(stashed, ModelKind::Mlp, DType::Float64, 8);
    const AsyncRun got = run_pipeline(no_stash, ModelKind::Mlp, DType::Float64, 8);
    const double mismatch = weight_diff(*got.model, *stashed.model);
    EXPECT_GT(mismatch, 1e-4) << "without stashing the weights should drift from PipeDream's";
    std::printf("P=%d: without weight stashing the weights differ from PipeDream's by %.2e relative after %d steps\n",
                P, mismatch, kSteps);
  }
}

TEST(AsyncPipeline, EachRankHoldsTheVersionsItsMicroBatchesInFlightNeed) {
  // Rank r of PipeDream holds P - r versions in the steady state (M = 8 >= 2(P - 1) + 1), vertical
  // sync P on every rank, 2BW two; each version is the stage's whole weights.
  const int P = 3, M = 8;
  for (const AsyncRule& a : {AsyncRule{"pipedream", P}, AsyncRule{"pipedream", P, 1, true, true}, AsyncRule{"2bw", P, 4},
                             AsyncRule{"pipedream", P, 1, false}}) {
    SCOPED_TRACE(name_of(a));
    const AsyncRun got = run_pipeline(a, ModelKind::Mlp, DType::Float64, M);
    for (int r = 0; r < P; ++r) {
      const int want = a.two_bw() ? 2 : !a.stashing ? 1 : a.vertical_sync ? P : P - r;
      EXPECT_EQ(got.peak_versions[static_cast<size_t>(r)], want) << "rank " << r;
      EXPECT_EQ(got.peak_version_bytes[static_cast<size_t>(r)], want * got.stage_bytes[static_cast<size_t>(r)]);
    }
  }
}

// A Pipe built on `ranks` rank threads with these options must fail on every rank with `expect`.
void expect_refused(int ranks, const std::function<PipeOptions()>& make, const std::string& expect,
                    const std::function<void(Pipe&)>& then = nullptr) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0, kSeed);
  const test_util::Failure f = test_util::failure_of(ranks, [&](RankContext& ctx) {
    PipeOptions o = make();
    std::unique_ptr<Communicator> dp;
    if (o.stages != ctx.comm.size() && o.stage_replicas.empty()) {  // data-parallel replicas of a 1-stage pipe
      Grid g = make_grid(ctx.comm, o.stages, ctx.comm.size() / o.stages);
      o.replicas = g.data.get();
      Pipe pipe(model, *g.pipeline, o);
      return;
    }
    Pipe pipe(model, ctx.comm, o);
    if (then) then(pipe);
  });
  EXPECT_NE(f.message.find(expect), std::string::npos) << f.message;
  EXPECT_EQ(f.ranks_with_errors, ranks) << f.message;
}

PipeOptions base(const std::string& schedule, int P = 2, int M = 4) {
  PipeOptions o;
  o.stages = P;
  o.microbatches = M;
  o.schedule = schedule;
  o.loss = test_util::loss_of(ModelKind::Mlp);
  return o;
}

TEST(AsyncPipeline, RefusesWhatItDoesNotSupportNamingBothOptions) {
  expect_refused(2, [] { auto o = base("2bw", 2, 8); o.window = 3; return o; }, "--window 3 does not divide --microbatches 8");
  expect_refused(4, [] { auto o = base("2bw", 4, 8); o.window = 2; return o; }, "--window 2 is shorter than P - 1 = 3");
  expect_refused(2, [] { auto o = base("pipedream"); o.weight_stashing = false; o.checkpoint = Checkpoint::Always; return o; },
                 "--no-weight-stashing and --checkpoint always do not combine");
  expect_refused(2, [] { auto o = base("pipedream"); o.weight_stashing = false; o.vertical_sync = true; return o; },
                 "--vertical-sync and --no-weight-stashing do not combine");
  expect_refused(2, [] { auto o = base("2bw"); o.vertical_sync = true; return o; }, "--schedule 2bw and --vertical-sync");
  expect_refused(2, [] { auto o = base("2bw"); o.weight_stashing = false; return o; }, "--schedule 2bw and --no-weight-stashing");
  expect_refused(2, [] { auto o = base("pipedream"); o.window = 2; return o; }, "--window 2 applies to --schedule 2bw, not pipedream");
  expect_refused(2, [] { auto o = base("1f1b"); o.window = 2; return o; }, "--window 2 applies to --schedule 2bw, not 1f1b");
  expect_refused(2, [] { auto o = base("gpipe"); o.weight_stashing = false; return o; }, "--no-weight-stashing applies to --schedule pipedream, not gpipe");
  expect_refused(2, [] { auto o = base("zb-h1"); o.vertical_sync = true; return o; }, "--vertical-sync applies to --schedule pipedream, not zb-h1");
  expect_refused(2, [] { auto o = base("pipedream"); o.virtual_chunks = 2; return o; }, "--virtual 2 needs --schedule interleaved, got pipedream");
  expect_refused(3, [] { auto o = base("2bw"); o.stage_replicas = {2, 1}; return o; }, "stage replicas run gpipe or 1f1b, got 2bw");
  expect_refused(2, [] { return base("pipedream", 1); }, "--schedule pipedream and --dp 2 do not combine");
  // Steps without the optimizer, an optimizer over other tensors, clipping.
  const Batch b = test_util::make_batch(ModelKind::Mlp, DType::Float64, 8, 1);
  expect_refused(2, [] { return base("pipedream"); }, "give it to set_optimizer() before the first step",
                 [&](Pipe& pipe) { pipe.train_step(b.x, b.y); });
  expect_refused(2, [] { return base("1f1b"); }, "only pipedream and 2bw step it inside the pipeline", [](Pipe& pipe) {
    optim::SGD sgd(pipe.parameters(), {});
    pipe.set_optimizer(sgd);
  });
  expect_refused(2, [] { return base("2bw"); }, "the optimizer must hold exactly this rank's parameters", [](Pipe& pipe) {
    std::vector<Tensor> some = pipe.parameters();
    some.pop_back();
    optim::SGD sgd(some, {});
    pipe.set_optimizer(sgd);
  });
  expect_refused(2, [] { return base("pipedream"); }, "clipping is not supported with it", [&](Pipe& pipe) {
    optim::SGD sgd(pipe.parameters(), {});
    pipe.set_optimizer(sgd);
    pipe.train_step(b.x, b.y);
    pipe.clip_grad_norm_(1.0);
  });
}

}  // namespace
}  // namespace minipipe::parallel
