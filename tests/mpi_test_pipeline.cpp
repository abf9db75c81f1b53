// Pipelined training equals single-device training on the `mpi` backend too: ctest runs this
// program under mpirun -np 2 and -np 3; every process builds the model from the same seed and the
// single-device reference, runs one pipelined step with P = the world size, and checks the loss
// and the gradients of its own chunks (float64, 1e-12 relative) for a representative subset of
// schedules, micro-batch counts and checkpoint modes on the MLP and the tiny GPT with dropout, with
// sends that do not block (the default) and with blocking ones; and
// the asynchronous PipeDream and 2BW match their single-process references over three steps.
#include <gtest/gtest.h>

#include <algorithm>

#include "async_reference.h"
#include "mpi_main.h"
#include "parallel/generators.h"
#include "pipeline_models.h"

namespace minipipe::parallel {
namespace {

using test_util::ModelKind;

using mpi_test::world;

struct Case {
  ModelKind model;
  std::string schedule;
  int microbatches;
  Checkpoint checkpoint;
  bool blocking_sends = false;
};

class MpiEquivalence : public ::testing::TestWithParam<Case> {};

TEST_P(MpiEquivalence, OneStepGivesTheSingleDeviceLossAndGradients) {
  const Case& c = GetParam();
  const int P = world->size();
  if (c.schedule == "interleaved" && !interleaved_accepts(P, c.microbatches)) GTEST_SKIP() << "M not accepted";
  const auto loss = test_util::loss_of(c.model);
  const auto batch = test_util::make_batch(c.model, DType::Float64, 8, 3);
  test_util::Reference ref(c.model, DType::Float64, 0.2, 7, 99);
  const double ref_loss = ref.forward_backward(batch, loss, 0);
  const auto ref_grads = test_util::grads_by_name(*ref.model);

  auto model = test_util::build_model(c.model, DType::Float64, 0.2, 7);
  PipeOptions o;
  o.stages = P;
  o.microbatches = c.microbatches;
  o.schedule = c.schedule;
  o.virtual_chunks = c.schedule == "interleaved" ? 2 : 1;
  o.checkpoint = c.checkpoint;
  o.seed = 99;
  o.loss = loss;
  o.async_sends = !c.blocking_sends;
  Pipe pipe(model, *world, o);
  const double got = pipe.train_step(batch.x, batch.y);
  EXPECT_LE(std::abs(got - ref_loss), 1e-12 * std::abs(ref_loss)) << "rank " << world->rank();
  int checked = 0;
  for (const auto& [name, t] : pipe.local_layers()->named_parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_LE(test_util::rel_diff(t.grad(), ref_grads.at(name)), 1e-12) << name << " on rank " << world->rank();
    ++checked;
  }
  // Every parameter was checked on some rank (a rank may hold only parameter-free layers).
  Tensor total = full({1}, checked, DType::Int64);
  world->all_reduce(total);
  EXPECT_EQ(total.item(), static_cast<double>(model->parameters().size()));
}

// Stage replicas (1F1B-RR) across processes: -np 3 runs stages {2, 1}, -np 4 runs {1, 2, 1}.
TEST(MpiStageReplicas, OneStepGivesTheSingleDeviceLossAndGradients) {
  const int W = world->size();
  if (W < 3) GTEST_SKIP() << "stage replicas need 3 ranks or more";
  const std::vector<int> replicas = W == 3 ? std::vector<int>{2, 1} : std::vector<int>{1, W - 2, 1};
  for (ModelKind m : {ModelKind::Mlp, ModelKind::Gpt}) {
    const auto loss = test_util::loss_of(m);
    const auto batch = test_util::make_batch(m, DType::Float64, 8, 3);
    test_util::Reference ref(m, DType::Float64, 0.2, 7, 99);
    const double ref_loss = ref.forward_backward(batch, loss, 0);
    const auto ref_grads = test_util::grads_by_name(*ref.model);
    auto model = test_util::build_model(m, DType::Float64, 0.2, 7);
    PipeOptions o;
    o.stages = static_cast<int>(replicas.size());
    o.microbatches = 4;
    o.checkpoint = Checkpoint::ExceptLast;
    o.seed = 99;
    o.loss = loss;
    o.stage_replicas = replicas;
    Pipe pipe(model, *world, o);
    const double got = pipe.train_step(batch.x, batch.y);
    EXPECT_LE(std::abs(got - ref_loss), 1e-12 * std::abs(ref_loss)) << "rank " << world->rank();
    for (const auto& [name, t] : pipe.local_layers()->named_parameters()) {
      ASSERT_TRUE(t.grad().defined()) << name;
      EXPECT_LE(test_util::rel_diff(t.grad(), ref_grads.at(name)), 1e-12) << name << " on rank " << world->rank();
    }
  }
}

// PipeDream (with vertical sync too) and 2BW across processes: three steps of 8 micro-batches give the
// weights of the single-process reference of their update rules (tests/async_reference.h).
TEST(MpiAsync, ThreeStepsGiveTheReferenceWeights) {
  const int P = world->size();
  for (const test_util::AsyncRule& a : {test_util::AsyncRule{"pipedream", P}, test_util::AsyncRule{"pipedream", P, 1, true, true},
                                        test_util::AsyncRule{"2bw", P, 4}}) {
    SCOPED_TRACE(a.schedule + (a.vertical_sync ? " vertical sync" : ""));
    test_util::AsyncReference ref(a, ModelKind::Mlp, DType::Float64, 0.2, 7, 99);
    auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.2, 7);
    PipeOptions o;
    o.stages = P;
    o.microbatches = 8;
    o.schedule = a.schedule;
    o.window = a.two_bw() ? a.window : 0;
    o.vertical_sync = a.vertical_sync;
    o.checkpoint = Checkpoint::ExceptLast;
    o.seed = 99;
    o.loss = test_util::loss_of(ModelKind::Mlp);
    Pipe pipe(model, *world, o);
    optim::AdamW opt(pipe.parameters(), optim::AdamWOptions{.lr = 1e-2});
    pipe.set_optimizer(opt);
    for (int k = 0; k < 3; ++k) {
      const auto b = test_util::make_batch(ModelKind::Mlp, DType::Float64, 16, 100 + static_cast<uint64_t>(k));
      const double want = ref.call(b, 8, o.loss, static_cast<uint64_t>(k));
      const double got = pipe.train_step(b.x, b.y);
      EXPECT_LE(std::abs(got - want), 1e-12 * std::abs(want)) << "step " << k << " rank " << world->rank();
    }
    const auto ref_params = ref.model->named_parameters();
    for (const auto& [name, t] : pipe.local_layers()->named_parameters())
      for (const auto& [other, u] : ref_params)
        if (other == name) {
          EXPECT_LE(test_util::rel_diff(t, u), 1e-12) << name << " on rank " << world->rank();
        }
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (ModelKind m : {ModelKind::Mlp, ModelKind::Gpt})
    for (const char* s : {"gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2"})
      for (int M : {2, 4})
        for (Checkpoint ckpt : {Checkpoint::Never, Checkpoint::Always}) out.push_back({m, s, M, ckpt});
  for (ModelKind m : {ModelKind::Mlp, ModelKind::Gpt})  // blocking sends (lower(): the rendezvous lowering)
    for (const char* s : {"gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2"}) out.push_back({m, s, 4, Checkpoint::Never, true});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Mpi, MpiEquivalence, ::testing::ValuesIn(cases()), [](const auto& info) {
  const Case& c = info.param;
  std::string schedule = c.schedule;
  std::replace(schedule.begin(), schedule.end(), '-', '_');  // gtest names: letters, digits, '_'
  return std::string(c.model == ModelKind::Mlp ? "mlp_" : "gpt_") + schedule + "_M" + std::to_string(c.microbatches) +
         "_" + checkpoint_name(c.checkpoint) + (c.blocking_sends ? "_blocking" : "");
});

}  // namespace
}  // namespace minipipe::parallel

int main(int argc, char** argv) { return minipipe::parallel::mpi_test::run_all(argc, argv); }
