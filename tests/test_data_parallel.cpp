// Tests of data parallelism (parallel/data_parallel.h, parallel/grid.h) on `local` rank threads:
// the bucket layout, exact rank-valued averages across uneven bucket boundaries, reductions that
// start during backward, ZeRO-1's shares and state bytes — and the central check: dp in {1, 2, 4}
// x pp in {1, 2} x every schedule x ZeRO-1 on and off train exactly as one device on the whole
// batch (losses and weights over three clipped steps; float64 1e-12, float32 1e-5).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "parallel/comm_local.h"
#include "parallel/data_parallel.h"
#include "parallel/generators.h"
#include "parallel/grid.h"
#include "pipeline_models.h"

namespace minipipe::parallel {
namespace {

using test_util::ModelKind;

using test_util::run_ranks;

std::vector<Tensor> make_params(const std::vector<int64_t>& sizes, double value) {
  std::vector<Tensor> out;
  for (int64_t n : sizes) out.push_back(full({n}, value, DType::Float64).set_requires_grad(true));
  return out;
}

TEST(DataParallelBuckets, ReverseRegistrationOrderUnderTheCap) {
  // 1 MiB cap = 131072 float64: [0]=60000, [1]=50000, [2]=200000 (over the cap alone), [3]=30000.
  auto comms = make_local_world(1);
  DataParallel dp(make_params({60000, 50000, 200000, 30000}, 1.0), *comms[0], {.bucket_mb = 1.0});
  const auto& b = dp.buckets();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].params, (std::vector<size_t>{3}));  // 30000 + 200000 would pass the cap
  EXPECT_EQ(b[1].params, (std::vector<size_t>{2}));
  EXPECT_EQ(b[2].params, (std::vector<size_t>{1, 0}));
  EXPECT_EQ(b[2].numel, 110000);
}

// Replica r sets every gradient to (r + 1) * (i + 1) for element i: the mean is exact in float64.
// Tiny buckets put boundaries inside the parameter list at uneven places.
TEST(DataParallelReduce, RankValuedGradientsAverageExactlyAcrossUnevenBuckets) {
  for (int R : {2, 3, 4}) {
    run_ranks(R, [&](RankContext& ctx) {
      auto params = make_params({5, 300, 7, 40000, 1}, 0.5);
      // 0.003 MiB = 393 float64: buckets {4}, {3}, {2, 1, 0}.
      DataParallel dp(params, ctx.comm, {.bucket_mb = 0.003});
      ASSERT_EQ(dp.buckets().size(), 3u);
      EXPECT_EQ(dp.buckets()[2].params, (std::vector<size_t>{2, 1, 0}));
      for (auto& p : params)
        p.mutable_grad() = ops::mul_scalar(ops::add_scalar(arange(p.numel(), DType::Float64), 1.0), ctx.comm.rank() + 1);
      dp.finish_gradients();
      for (auto& p : params) {
        const auto g = p.grad().to_vector<double>();
        for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], (i + 1) * (R + 1) / 2.0) << "R=" << R << " i=" << i;
      }
      EXPECT_EQ(dp.average(ctx.comm.rank()), (R - 1) / 2.0);
    });
  }
}

// With overlap, the buckets whose gradients backward completes start before finish_gradients.
TEST(DataParallelReduce, BucketsStartDuringBackward) {
  run_ranks(2, [&](RankContext& ctx) {
    auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.0, 1);
    const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float64, 8, 2);
    for (bool overlap : {true, false}) {
      DataParallel dp(model->parameters(), ctx.comm, {.bucket_mb = 0.001, .overlap = overlap, .backwards_per_step = 2});
      for (int m = 0; m < 2; ++m) cross_entropy(model->forward(ops::narrow(batch.x, 0, 4 * m, 4)),
                                                 ops::narrow(batch.y, 0, 4 * m, 4)).backward();
      dp.finish_gradients();
      if (overlap) EXPECT_EQ(dp.launched_during_backward(), static_cast<int>(dp.buckets().size()));
      else EXPECT_EQ(dp.launched_during_backward(), 0);
      model->zero_grad();
    }
  });
}

TEST(DataParallelZero1, SharesCoverEveryParameterOnceAndHalveTheState) {
  run_ranks(2, [&](RankContext& ctx) {
    auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
    DataParallel plain(model->parameters(), ctx.comm, {}), sharded(model->parameters(), ctx.comm, {.zero1 = true});
    EXPECT_EQ(plain.optimizer_params().size(), model->parameters().size());
    const auto mine = sharded.optimizer_params();
    // Every parameter is owned by exactly one replica: sum the replicas' ownership marks.
    const auto params = model->parameters();
    Tensor owned = zeros({static_cast<int64_t>(params.size())}, DType::Int64);
    for (size_t i = 0; i < params.size(); ++i)
      for (const Tensor& t : mine)
        if (t.is_same(params[i])) owned.data_ptr<int64_t>()[i] += 1;
    ctx.comm.all_reduce(owned);
    for (int64_t n : owned.to_vector<int64_t>()) EXPECT_EQ(n, 1);
    // State bytes after one step: the replicas' shares add up to one unsharded optimizer's.
    for (Tensor p : model->parameters()) p.mutable_grad() = ones(p.sizes());
    optim::AdamW full_opt(plain.optimizer_params(), {}), shard_opt(mine, {});
    full_opt.step();
    shard_opt.step();
    Tensor bytes = full({1}, static_cast<double>(shard_opt.state_bytes()), DType::Float64);
    ctx.comm.all_reduce(bytes);
    EXPECT_EQ(bytes.item(), static_cast<double>(full_opt.state_bytes()));
    EXPECT_LT(shard_opt.state_bytes(), full_opt.state_bytes() * 0.6);  // balanced by elements
  });
}

// ---- the equivalence grid ----

struct Case {
  ModelKind model;
  DType dtype;
  std::string schedule;
  int pp, dp;
  bool zero1;
};

constexpr int64_t kRows = 16;
constexpr int kM = 2;

void expect_equivalent(const Case& c) {
  const double tol = test_util::tolerance(c.dtype);
  const auto loss = test_util::loss_of(c.model);
  constexpr double kClip = 0.5;
  auto make_opt = [&](const std::vector<Tensor>& params) -> std::unique_ptr<optim::Optimizer> {
    // AdamW in float64; SGD with momentum in float32 (see test_pipeline_equivalence.cpp for why).
    if (c.dtype == DType::Float64) return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{.lr = 1e-2});
    return std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = 1e-1, .momentum = 0.9});
  };
  test_util::Reference ref(c.model, c.dtype, 0.2, 7, 99);
  auto ref_opt = make_opt(ref.model->parameters());
  std::vector<test_util::Batch> batches;
  std::vector<double> ref_losses;
  for (uint64_t s = 0; s < 3; ++s) {
    batches.push_back(test_util::make_batch(c.model, c.dtype, kRows, 20 + s));
    ref_losses.push_back(ref.forward_backward(batches.back(), loss, s, kClip));
    ref_opt->step();
  }
  std::vector<std::shared_ptr<nn::Sequential>> replicas;
  for (int d = 0; d < c.dp; ++d) replicas.push_back(test_util::build_model(c.model, c.dtype, 0.2, 7));
  std::vector<std::vector<double>> losses(static_cast<size_t>(c.pp * c.dp));
  run_ranks(c.pp * c.dp, [&](RankContext& ctx) {
    Grid grid = make_grid(ctx.comm, c.pp, c.dp);
    PipeOptions o;
    o.stages = c.pp;
    o.microbatches = kM;
    o.schedule = c.schedule;
    o.virtual_chunks = c.schedule == "interleaved" ? 2 : 1;
    o.checkpoint = Checkpoint::ExceptLast;
    o.seed = 99;
    o.loss = loss;
    Pipe pipe(replicas[static_cast<size_t>(grid.replica)], *grid.pipeline, o);
    DataParallel dp(pipe.parameters(), *grid.data, {.bucket_mb = 0.002, .backwards_per_step = kM, .zero1 = c.zero1});
    auto opt = make_opt(dp.optimizer_params());
    const int64_t shard = kRows / c.dp, first = grid.replica * shard;
    for (const auto& b : batches) {
      dp.zero_grad();  // every gradient: with ZeRO-1 the optimizer holds only a share
      const double l = pipe.train_step(ops::narrow(b.x, 0, first, shard), ops::narrow(b.y, 0, first, shard), first);
      dp.finish_gradients();
      losses[static_cast<size_t>(ctx.comm.rank())].push_back(dp.average(l));
      pipe.clip_grad_norm_(kClip);
      opt->step();
      dp.after_step();
    }
  });
  for (size_t r = 0; r < losses.size(); ++r)
    for (size_t s = 0; s < 3; ++s)
      EXPECT_LE(std::abs(losses[r][s] - ref_losses[s]), tol * std::abs(ref_losses[s])) << "rank " << r << " step " << s;
  const auto want = ref.model->named_parameters();
  for (int d = 0; d < c.dp; ++d) {
    const auto got = replicas[static_cast<size_t>(d)]->named_parameters();
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LE(test_util::rel_diff(got[i].second, want[i].second), tol) << "replica " << d << " " << got[i].first;
  }
}

class DataParallelEquivalence : public ::testing::TestWithParam<Case> {};

TEST_P(DataParallelEquivalence, ThreeStepsEqualOneDevice) { expect_equivalent(GetParam()); }

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* s : {"gpipe", "1f1b", "interleaved"})
    for (int pp : {1, 2})
      for (int dp : {1, 2, 4})
        for (bool z : {false, true}) out.push_back({ModelKind::Mlp, DType::Float64, s, pp, dp, z});
  for (int dp : {2, 4})
    for (bool z : {false, true}) {
      out.push_back({ModelKind::Mlp, DType::Float32, "1f1b", 2, dp, z});
      out.push_back({ModelKind::Gpt, DType::Float64, "1f1b", 2, dp, z});
    }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Grid, DataParallelEquivalence, ::testing::ValuesIn(cases()), [](const auto& info) {
  const Case& c = info.param;
  return std::string(c.model == ModelKind::Mlp ? "mlp_" : "gpt_") + (c.dtype == DType::Float64 ? "f64_" : "f32_") +
         c.schedule + "_pp" + std::to_string(c.pp) + "_dp" + std::to_string(c.dp) + (c.zero1 ? "_zero1" : "");
});

// ---- bad input: an error on every rank ----

int errors_of(int n, const std::function<void(RankContext&)>& fn, std::string* message) {
  const test_util::Failure f = test_util::failure_of(n, fn);
  *message = f.message;
  return f.ranks_with_errors;
}

TEST(DataParallelErrors, WorldThatIsNotAGrid) {
  std::string message;
  EXPECT_EQ(errors_of(3, [](RankContext& ctx) { make_grid(ctx.comm, 2, 2); }, &message), 3);
  EXPECT_NE(message.find("3 ranks cannot form 2 stages x 2 replicas (needs 4)"), std::string::npos) << message;
}

TEST(DataParallelErrors, ReplicasThatStartDifferently) {
  std::string message;
  const int errors = errors_of(2, [](RankContext& ctx) {
    auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1 + ctx.comm.rank());  // other seeds
    DataParallel dp(model->parameters(), ctx.comm, {});
  }, &message);
  EXPECT_EQ(errors, 2);
  EXPECT_NE(message.find("replica 1 starts from another parameter 0 than replica 0 ([16, 6] against [16, 6], or other values"),
            std::string::npos) << message;
}

TEST(DataParallelErrors, ReplicasWithOtherOptions) {
  std::string message;
  const int errors = errors_of(2, [](RankContext& ctx) {
    auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
    DataParallel dp(model->parameters(), ctx.comm, {.bucket_mb = ctx.comm.rank() == 0 ? 25.0 : 1.0});
  }, &message);
  EXPECT_EQ(errors, 2);
  EXPECT_NE(message.find("replica 1 has options 'bucket_mb=1.000000"), std::string::npos) << message;
}

TEST(DataParallelErrors, MoreBackwardsThanDeclared) {
  auto comms = make_local_world(1);
  Tensor w = ones({2}, DType::Float64).set_requires_grad(true);
  DataParallel dp({w}, *comms[0], {.backwards_per_step = 1});
  sum(w).backward();
  EXPECT_THROW(sum(w).backward(), Error);
}

}  // namespace
}  // namespace minipipe::parallel
