// Pipe with stage replicas (1F1B-RR) trains like one device: every replica vector x schedule x M x
// checkpoint mode on the MLP and the tiny GPT with dropout gives one device's loss and gradients
// (float64 within 1e-12), every replica of a stage ends with the same gradients bit for bit, and
// three clipped AdamW steps give one device's weights. Under `local` the ranks are threads of one
// process, so each replica index gets its own copy of the model (as the trainers do).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "parallel/generators.h"
#include "pipeline_models.h"

namespace minipipe::parallel {
namespace {

using test_util::Batch;
using test_util::ModelKind;
using test_util::Reference;

constexpr uint64_t kSeed = 7, kDropoutSeed = 99;
constexpr double kDropout = 0.2;
constexpr int64_t kRows = 8;

struct Case {
  ModelKind model;
  std::vector<int> replicas;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = info.param.model == ModelKind::Mlp ? "mlp" : "gpt";
  for (int R : info.param.replicas) {
    s += '_';
    s += std::to_string(R);
  }
  return s;
}

// The rank's stage and its replica index there (ranks are numbered stage by stage).
std::pair<int, int> stage_and_replica(const std::vector<int>& replicas, int rank) {
  for (int s = 0, first = 0; s < static_cast<int>(replicas.size()); first += replicas[s], ++s)
    if (rank < first + replicas[s]) return {s, rank - first};
  return {-1, -1};
}

struct Trained {
  std::vector<std::shared_ptr<nn::Sequential>> copies;  // one per replica index
  std::vector<double> losses;                           // per rank
};

Trained train(const Case& c, const std::string& schedule, int M, Checkpoint ckpt, const std::vector<Batch>& batches,
          double clip = 0) {
  const int world = std::accumulate(c.replicas.begin(), c.replicas.end(), 0);
  const int copies = *std::max_element(c.replicas.begin(), c.replicas.end());
  Trained run;
  for (int i = 0; i < copies; ++i) run.copies.push_back(test_util::build_model(c.model, DType::Float64, kDropout, kSeed));
  run.losses.assign(static_cast<size_t>(world), -1);
  test_util::run_ranks(world, [&](RankContext& ctx) {
    PipeOptions o;
    o.stages = static_cast<int>(c.replicas.size());
    o.microbatches = M;
    o.schedule = schedule;
    o.checkpoint = ckpt;
    o.seed = kDropoutSeed;
    o.loss = test_util::loss_of(c.model);
    o.stage_replicas = c.replicas;
    const int copy = stage_and_replica(c.replicas, ctx.comm.rank()).second;
    Pipe pipe(run.copies[static_cast<size_t>(copy)], ctx.comm, o);
    optim::AdamW opt(pipe.parameters(), {.lr = 1e-2});
    for (const Batch& b : batches) {
      opt.zero_grad();
      run.losses[static_cast<size_t>(ctx.comm.rank())] = pipe.train_step(b.x, b.y);
      if (clip > 0) {
        pipe.clip_grad_norm_(clip);
        opt.step();
      }
    }
  });
  return run;
}

class StageReplicasPipe : public ::testing::TestWithParam<Case> {};

TEST_P(StageReplicasPipe, OneStepGivesTheSingleDeviceLossAndGradients) {
  const Case& c = GetParam();
  const int maxR = *std::max_element(c.replicas.begin(), c.replicas.end());
  const Batch batch = test_util::make_batch(c.model, DType::Float64, kRows, 3);
  Reference ref(c.model, DType::Float64, kDropout, kSeed, kDropoutSeed);
  const double ref_loss = ref.forward_backward(batch, test_util::loss_of(c.model), 0);
  const auto ref_grads = test_util::grads_by_name(*ref.model);
  for (const char* schedule : {"gpipe", "1f1b"})
    for (int M : {2, 4, 8}) {
      if (M < maxR) continue;
      for (Checkpoint ckpt : {Checkpoint::Never, Checkpoint::Always}) {
        SCOPED_TRACE(std::string(schedule) + " M=" + std::to_string(M) + " checkpoint=" + checkpoint_name(ckpt));
        const Trained run = train(c, schedule, M, ckpt, {batch});
        for (size_t r = 0; r < run.losses.size(); ++r)
          EXPECT_LE(std::abs(run.losses[r] - ref_loss), 1e-12 * std::abs(ref_loss)) << "rank " << r;
        // Copy 0 holds every stage's first replica: one device's gradients.
        for (const auto& [name, t] : run.copies[0]->named_parameters()) {
          ASSERT_TRUE(t.grad().defined()) << name;
          EXPECT_LE(test_util::rel_diff(t.grad(), ref_grads.at(name)), 1e-12) << name;
        }
        // Every other copy's trained parameters (its stages' replicas) carry the same bits.
        for (size_t k = 1; k < run.copies.size(); ++k) {
          const auto params = run.copies[k]->named_parameters(), first = run.copies[0]->named_parameters();
          for (size_t i = 0; i < params.size(); ++i) {
            if (!params[i].second.grad().defined()) continue;  // a stage with fewer replicas
            EXPECT_EQ(params[i].second.grad().template to_vector<double>(), first[i].second.grad().template to_vector<double>())
                << "copy " << k << " " << params[i].first;
          }
        }
      }
    }
}

TEST_P(StageReplicasPipe, ThreeClippedAdamWStepsGiveTheSameWeights) {
  const Case& c = GetParam();
  const auto loss = test_util::loss_of(c.model);
  Reference ref(c.model, DType::Float64, kDropout, kSeed, kDropoutSeed);
  std::vector<Batch> batches;
  std::vector<double> ref_losses;
  for (uint64_t s = 0; s < 3; ++s) {
    batches.push_back(test_util::make_batch(c.model, DType::Float64, kRows, 10 + s));
    ref_losses.push_back(ref.forward_backward(batches.back(), loss, s, 0.5));
    ref.opt->step();
  }
  const Trained run = train(c, "1f1b", 4, Checkpoint::ExceptLast, batches, 0.5);
  for (size_t r = 0; r < run.losses.size(); ++r)
    EXPECT_LE(std::abs(run.losses[r] - ref_losses.back()), 1e-12 * std::abs(ref_losses.back())) << "rank " << r;
  const auto ref_params = ref.model->named_parameters();
  for (const auto& copy : run.copies) {
    const auto params = copy->named_parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].second.grad().defined()) continue;  // not trained through this copy
      EXPECT_LE(test_util::rel_diff(params[i].second, ref_params[i].second), 1e-12) << params[i].first;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Pipeline, StageReplicasPipe,
                         ::testing::Values(Case{ModelKind::Mlp, {2, 1}}, Case{ModelKind::Mlp, {1, 2}},
                                           Case{ModelKind::Mlp, {2, 2}}, Case{ModelKind::Mlp, {1, 3, 1}},
                                           Case{ModelKind::Gpt, {2, 1}}, Case{ModelKind::Gpt, {1, 2, 2}}),
                         case_name);

// A checkpoint saved from replicated stages is one device's model; loading it reaches every replica.
TEST(StageReplicasPipe, CheckpointsGatherFromAndScatterToEveryReplica) {
  const Case c{ModelKind::Mlp, {1, 2}};
  const Batch batch = test_util::make_batch(c.model, DType::Float64, kRows, 3);
  const Trained trained = train(c, "1f1b", 4, Checkpoint::Never, {batch, batch}, 0.5);
  const std::string path = ::testing::TempDir() + "/stage_replicas.safetensors";
  auto fresh = [&] { return test_util::build_model(c.model, DType::Float64, kDropout, 123); };  // other weights
  std::vector<std::shared_ptr<nn::Sequential>> copies = {trained.copies[0], trained.copies[1]};
  std::vector<std::shared_ptr<nn::Sequential>> loaded = {fresh(), fresh()};
  for (bool save : {true, false})
    test_util::run_ranks(3, [&](RankContext& ctx) {
      PipeOptions o;
      o.stages = 2;
      o.microbatches = 4;
      o.loss = test_util::loss_of(c.model);
      o.stage_replicas = c.replicas;
      const int copy = stage_and_replica(c.replicas, ctx.comm.rank()).second;
      Pipe pipe((save ? copies : loaded)[static_cast<size_t>(copy)], ctx.comm, o);
      if (save) pipe.save(path);
      else pipe.load(path);
    });
  // Rank 2 (stage 1, replica 1) loaded into copy 1: its stage's weights are the trained ones.
  const auto want = trained.copies[0]->named_parameters();
  for (int k = 0; k < 2; ++k) {
    const auto got = loaded[static_cast<size_t>(k)]->named_parameters();
    for (size_t i = 0; i < got.size(); ++i) {
      const bool on_copy = k == 0 || trained.copies[1]->named_parameters()[i].second.grad().defined();
      if (on_copy) {
        EXPECT_EQ(test_util::rel_diff(got[i].second, want[i].second), 0.0) << "copy " << k << " " << got[i].first;
      }
    }
  }
}

TEST(StageReplicasPipe, BadOptionsAreErrorsOnEveryRank) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.0, kSeed);
  auto expect_failure = [&](int ranks, PipeOptions o, const std::string& text) {
    const test_util::Failure f =
        test_util::failure_of(ranks, [&](RankContext& ctx) { Pipe pipe(model, ctx.comm, o); });
    EXPECT_NE(f.message.find(text), std::string::npos) << f.message;
    EXPECT_EQ(f.ranks_with_errors, ranks) << f.message;
  };
  PipeOptions o;
  o.stages = 2;
  o.microbatches = 4;
  o.loss = test_util::loss_of(ModelKind::Mlp);
  o.stage_replicas = {2, 1};
  expect_failure(2, o, "the stage replicas need a communicator of 3 ranks, got 2");
  o.schedule = "interleaved";
  expect_failure(3, o, "stage replicas run gpipe or 1f1b, got interleaved");
  o.schedule = "1f1b";
  o.stage_replicas = {2, 1, 1};
  expect_failure(4, o, "--stage-replicas lists 3 stages but --stages is 2");
  o.stage_replicas = {3, 1};
  o.microbatches = 2;
  expect_failure(4, o, "stage 0 has 3 replicas; it needs 1 to M = 2");
  // One model object for every rank thread: the replicas of stage 0 would share its tensors.
  o.stage_replicas = {2, 1};
  o.microbatches = 4;
  expect_failure(3, o, "replicas 0 and 1 of a stage hold the same parameter tensors");
}

// The replicas sum whole .grad()s, so a gradient left over from before the step would count R
// times: refused, naming the parameter.
TEST(StageReplicasPipe, AStepWithGradientsLeftOverIsAnError) {
  std::vector<std::shared_ptr<nn::Sequential>> copies = {
      test_util::build_model(ModelKind::Mlp, DType::Float64, 0.0, kSeed),
      test_util::build_model(ModelKind::Mlp, DType::Float64, 0.0, kSeed)};
  const Batch batch = test_util::make_batch(ModelKind::Mlp, DType::Float64, kRows, 3);
  const test_util::Failure f = test_util::failure_of(3, [&](RankContext& ctx) {
    PipeOptions o;
    o.stages = 2;
    o.microbatches = 4;
    o.loss = test_util::loss_of(ModelKind::Mlp);
    o.stage_replicas = {2, 1};
    Pipe pipe(copies[static_cast<size_t>(stage_and_replica({2, 1}, ctx.comm.rank()).second)], ctx.comm, o);
    pipe.train_step(batch.x, batch.y);
    pipe.train_step(batch.x, batch.y);  // no zero_grad between
  });
  EXPECT_NE(f.message.find("every gradient must be cleared (zero_grad) before a step"), std::string::npos)
      << f.message;
}

}  // namespace
}  // namespace minipipe::parallel
