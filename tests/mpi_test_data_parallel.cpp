// Data parallelism and the pp x dp grid on the `mpi` backend: ctest runs this program under
// mpirun -np 2, 3 and 4. With W processes it trains dp = W replicas of one stage, and, when W is
// even and above 2, a grid of 2 stages x W/2 replicas — three clipped steps, with and without
// ZeRO-1, equal to one device on the whole batch (float64, 1e-12 relative), and the all-reduce
// of rank-valued gradients across uneven buckets exact.
#include <gtest/gtest.h>

#include "mpi_main.h"
#include "parallel/data_parallel.h"
#include "parallel/grid.h"
#include "pipeline_models.h"

namespace minipipe::parallel {
namespace {

using test_util::ModelKind;

using mpi_test::world;

TEST(MpiDataParallel, RankValuedGradientsAverageExactly) {
  const int R = world->size();
  std::vector<Tensor> params;
  for (int64_t n : {5, 300, 7, 40000, 1}) params.push_back(full({n}, 0.5, DType::Float64).set_requires_grad(true));
  DataParallel dp(params, *world, {.bucket_mb = 0.003});
  for (auto& p : params)
    p.mutable_grad() = ops::mul_scalar(ops::add_scalar(arange(p.numel(), DType::Float64), 1.0), world->rank() + 1);
  dp.finish_gradients();
  for (auto& p : params) {
    const auto g = p.grad().to_vector<double>();
    for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], (i + 1) * (R + 1) / 2.0);
  }
}

class MpiGrid : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(MpiGrid, ThreeStepsEqualOneDevice) {
  const auto [pp, zero1] = GetParam();
  const int W = world->size();
  if (W % pp != 0 || (pp > 1 && W <= 2)) GTEST_SKIP() << "no " << pp << "-stage grid on " << W << " ranks";
  const int dp = W / pp, M = 2;
  const int64_t rows = 12 * dp;
  const auto loss = test_util::loss_of(ModelKind::Mlp);
  test_util::Reference ref(ModelKind::Mlp, DType::Float64, 0.2, 7, 99);
  std::vector<test_util::Batch> batches;
  std::vector<double> ref_losses;
  for (uint64_t s = 0; s < 3; ++s) {
    batches.push_back(test_util::make_batch(ModelKind::Mlp, DType::Float64, rows, 30 + s));
    ref_losses.push_back(ref.forward_backward(batches.back(), loss, s, 0.5));
    ref.opt->step();
  }
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.2, 7);
  Grid grid = make_grid(*world, pp, dp);
  PipeOptions o;
  o.stages = pp;
  o.microbatches = M;
  o.seed = 99;
  o.loss = loss;
  Pipe pipe(model, *grid.pipeline, o);
  DataParallel ddp(pipe.parameters(), *grid.data, {.bucket_mb = 0.002, .backwards_per_step = M, .zero1 = zero1});
  optim::AdamW opt(ddp.optimizer_params(), {.lr = 1e-2});
  const int64_t shard = rows / dp, first = grid.replica * shard;
  for (size_t s = 0; s < 3; ++s) {
    pipe.zero_grad();
    const auto& b = batches[s];
    const double l = ddp.average(
        pipe.train_step(ops::narrow(b.x, 0, first, shard), ops::narrow(b.y, 0, first, shard), first));
    ddp.finish_gradients();
    EXPECT_LE(std::abs(l - ref_losses[s]), 1e-12 * std::abs(ref_losses[s])) << "step " << s;
    pipe.clip_grad_norm_(0.5);
    opt.step();
    ddp.after_step();
  }
  const auto want = ref.model->named_parameters();
  for (const auto& [name, t] : pipe.local_layers()->named_parameters())
    for (const auto& [n2, w] : want)
      if (n2 == name) { EXPECT_LE(test_util::rel_diff(t, w), 1e-12) << name << " on rank " << world->rank(); }
  world->barrier();
}

INSTANTIATE_TEST_SUITE_P(Mpi, MpiGrid, ::testing::Combine(::testing::Values(1, 2), ::testing::Bool()),
                         [](const auto& info) {
                           return "pp" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_zero1" : "");
                         });

}  // namespace
}  // namespace minipipe::parallel

int main(int argc, char** argv) { return minipipe::parallel::mpi_test::run_all(argc, argv); }
