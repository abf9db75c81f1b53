// Tests of the Pipe API and the executor around training: inference (predict, evaluate) equal to
// the unpipelined model, checkpoints written by one stage count and read by another, the profiled
// cut, what describe() reports — and every bad input: a clear error on every rank, never a hang.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "pipeline_models.h"
#include "tests/temp_dir_test.h"

namespace minipipe::parallel {
namespace {

using test_util::ModelKind;

using test_util::run_ranks;

PipeOptions mlp_options(int P, int M, const std::string& schedule = "1f1b", int v = 1) {
  PipeOptions o;
  o.stages = P;
  o.microbatches = M;
  o.schedule = schedule;
  o.virtual_chunks = v;
  o.loss = test_util::loss_of(ModelKind::Mlp);
  return o;
}

using test_util::Failure;
Failure fail(int ranks, const std::function<void(RankContext&)>& fn) { return test_util::failure_of(ranks, fn); }

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(PipeInference, PredictAndEvaluateMatchTheWholeModel) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.5, 1);
  const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float64, 7, 2);  // 7 rows, M = 4: uneven parts
  Tensor want;
  {
    NoGradGuard no_grad;
    model->eval();
    want = model->forward(batch.x);
    model->train();
  }
  const double correct_want = ops::sum(ops::eq(ops::argmax(want, 1), batch.y)).item();
  for (const char* schedule : {"1f1b", "interleaved"}) {
    run_ranks(3, [&](RankContext& ctx) {
      Pipe pipe(model, ctx.comm, mlp_options(3, 4, schedule, std::string(schedule) == "interleaved" ? 2 : 1));
      Tensor got = pipe.predict(batch.x);
      EXPECT_EQ(got.defined(), pipe.is_last_stage());
      if (got.defined()) { EXPECT_LE(test_util::rel_diff(got, want), 1e-12) << schedule; }  // GEMMs of fewer rows
      const double correct = pipe.evaluate(batch.x, batch.y, [](const Tensor& out, const Tensor& y) {
        return ops::sum(ops::eq(ops::argmax(out, 1), y)).item();
      });
      EXPECT_EQ(correct, correct_want) << "rank " << ctx.comm.rank();  // on every rank
      EXPECT_TRUE(pipe.chunks().front().module->is_training());          // mode given back
    });
  }
}

class PipeCheckpoint : public test_util::TempDirTest {
 protected:
  PipeCheckpoint() : TempDirTest("minipipe_pipe_ckpt_") {}
};

// Trained and saved with P = 4; loaded with P = 1, P = 2 and into a plain model: the same tensors.
TEST_F(PipeCheckpoint, SavedWithFourStagesLoadsWithOneOrTwo) {
  const std::string file = path("model.safetensors");
  const auto batch = test_util::make_batch(ModelKind::Gpt, DType::Float32, 8, 2);
  auto trained = test_util::build_model(ModelKind::Gpt, DType::Float32, 0.1, 1);
  run_ranks(4, [&](RankContext& ctx) {
    PipeOptions o = mlp_options(4, 2);
    o.loss = test_util::loss_of(ModelKind::Gpt);
    Pipe pipe(trained, ctx.comm, o);
    optim::AdamW opt(pipe.parameters(), {.lr = 1e-2});
    for (int s = 0; s < 2; ++s) {
      opt.zero_grad();
      pipe.train_step(batch.x, batch.y);
      opt.step();
    }
    pipe.save(file, {{"note", "four stages"}});
  });
  nn::Metadata meta;
  const nn::TensorMap saved = nn::load_tensors(file, &meta);
  EXPECT_EQ(meta["note"], "four stages");
  EXPECT_EQ(saved.size(), trained->named_parameters().size());
  for (const auto& [name, t] : trained->named_parameters()) {
    ASSERT_TRUE(saved.count(name)) << name;  // the unpipelined model's names
    EXPECT_EQ(saved.at(name).to_vector<float>(), t.to_vector<float>()) << name;
  }
  for (int P : {1, 2}) {
    auto fresh = test_util::build_model(ModelKind::Gpt, DType::Float32, 0.1, 99);  // other weights
    run_ranks(P, [&](RankContext& ctx) {
      Pipe pipe(fresh, ctx.comm, mlp_options(P, 2));
      pipe.load(file);
    });
    for (const auto& [name, t] : fresh->named_parameters())
      EXPECT_EQ(t.to_vector<float>(), saved.at(name).to_vector<float>()) << "P=" << P << " " << name;
  }
}

TEST_F(PipeCheckpoint, ABadFileIsAnErrorOnEveryRank) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const Failure f = fail(2, [&](RankContext& ctx) {
    Pipe pipe(model, ctx.comm, mlp_options(2, 2));
    pipe.load(path("missing.safetensors"));
  });
  EXPECT_TRUE(has(f.message, "does not exist")) << f.message;
  EXPECT_EQ(f.ranks_with_errors, 2);
}

TEST(PipeCut, ProfiledCutIsTheSameOnEveryRankAndDescribed) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  std::vector<std::string> described(2);
  const Tensor sample = randn({4, 6});  // drawn once: the default generator is not the ranks' to share
  run_ranks(2, [&](RankContext& ctx) {
    PipeOptions o = mlp_options(2, 2);
    o.partition = "time";
    o.profile_sample = sample;
    Pipe pipe(model, ctx.comm, o);
    described[static_cast<size_t>(ctx.comm.rank())] = pipe.describe();
    std::vector<std::string> names;
    for (const auto& [n, _] : pipe.local_layers()->named_parameters()) names.push_back(n);
    EXPECT_FALSE(names.empty());
    EXPECT_EQ(pipe.parameters().size(), names.size());
  });
  EXPECT_EQ(described[0], described[1]);
  for (const char* part : {"partition time", "profiled on rank 0", "(loss)", "schedule 1f1b: 2 ranks, 2 micro-batches",
                           "bubble 33.3% of the step", "micro-batches in flight per rank: 2 1"})
    EXPECT_TRUE(has(described[0], part)) << part << "\n" << described[0];
}

// A layer that draws from its chunk's sequential generator (RandomContext::generator), as a user
// layer may. Checkpointing recomputes its forward in B; the executor puts the generator back to
// where it was before F, so the recomputed noise is the noise F drew.
class SequentialNoise : public nn::Module {
 public:
  SequentialNoise() : Module("SequentialNoise") {}
  Tensor forward(const Tensor& x) override {
    if (!is_training()) return x;
    return x * (1.0 + 0.5 * randn(x.sizes(), x.options(), &random_context()->generator));
  }
};

TEST(PipeCheckpointing, RecomputationReplaysTheSequentialGenerator) {
  auto build = [] {
    Generator init(4);
    auto m = std::make_shared<nn::Sequential>();
    m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(6, 8).dtype(DType::Float64).generator(&init)));
    m->push_back(std::make_shared<SequentialNoise>());
    m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(8, 8).dtype(DType::Float64).generator(&init)));
    m->push_back(std::make_shared<SequentialNoise>());
    m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(8, 5).dtype(DType::Float64).generator(&init)));
    return m;
  };
  const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float64, 8, 2);
  std::vector<std::vector<double>> grads[2];
  for (Checkpoint mode : {Checkpoint::Never, Checkpoint::Always}) {
    auto model = build();
    run_ranks(2, [&](RankContext& ctx) {
      PipeOptions o = mlp_options(2, 4);
      o.checkpoint = mode;
      Pipe pipe(model, ctx.comm, o);
      for (int s = 0; s < 2; ++s) pipe.train_step(batch.x, batch.y);  // the generator moves on between steps
    });
    for (const Tensor& p : model->parameters()) grads[mode == Checkpoint::Always].push_back(p.grad().to_vector<double>());
  }
  EXPECT_EQ(grads[1], grads[0]);  // bit for bit: the same noise in the recomputation
}

// Cut so finely that some chunks are a lone Dropout(0), which hands its input back unchanged (10
// layers in 8 chunks): still one device's gradients.
TEST(PipeCut, ChunksThatReturnTheirInput) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.0, 1);
  const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float64, 8, 2);
  test_util::Reference ref(ModelKind::Mlp, DType::Float64, 0.0, 1, 0);
  ref.forward_backward(batch, test_util::loss_of(ModelKind::Mlp), 0);
  run_ranks(4, [&](RankContext& ctx) {
    Pipe pipe(model, ctx.comm, mlp_options(4, 2, "interleaved", 2));
    pipe.train_step(batch.x, batch.y);
  });
  const auto want = test_util::grads_by_name(*ref.model);
  for (const auto& [name, t] : model->named_parameters())
    EXPECT_LE(test_util::rel_diff(t.grad(), want.at(name)), 1e-12) << name;
}

// ---- bad input: a clear error on every rank ----

TEST(PipeErrors, BatchThatDoesNotSplitIntoMicroBatches) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float32, 10, 2);
  const Failure f = fail(2, [&](RankContext& ctx) {
    Pipe pipe(model, ctx.comm, mlp_options(2, 4));
    pipe.train_step(batch.x, batch.y);
  });
  EXPECT_TRUE(has(f.message, "a batch of 10 rows does not split into 4 micro-batches")) << f.message;
  EXPECT_EQ(f.ranks_with_errors, 2);
}

TEST(PipeErrors, MoreChunksThanLayers) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const Failure f = fail(3, [&](RankContext& ctx) { Pipe pipe(model, ctx.comm, mlp_options(3, 4, "interleaved", 4)); });
  EXPECT_TRUE(has(f.message, "cannot cut a model of 10 layers into 12 chunks (3 stages x 4 virtual chunks)")) << f.message;
  EXPECT_EQ(f.ranks_with_errors, 3);
}

TEST(PipeErrors, InterleavedWithAnUnsupportedMicroBatchCount) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const Failure f = fail(3, [&](RankContext& ctx) { Pipe pipe(model, ctx.comm, mlp_options(3, 7, "interleaved", 2)); });
  EXPECT_TRUE(has(f.message, "M=7")) << f.message;
  EXPECT_TRUE(has(f.message, "nearest M that work: 6 and 8")) << f.message;
  EXPECT_EQ(f.ranks_with_errors, 3);
}

TEST(PipeErrors, CommunicatorSizeOtherThanStages) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const Failure f = fail(2, [&](RankContext& ctx) { Pipe pipe(model, ctx.comm, mlp_options(3, 4)); });
  EXPECT_TRUE(has(f.message, "--stages 3 needs a communicator of 3 ranks, got 2")) << f.message;
  EXPECT_EQ(f.ranks_with_errors, 2);
}

TEST(PipeErrors, OptionsThatDifferAcrossRanks) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  Failure f = fail(3, [&](RankContext& ctx) {
    Pipe pipe(model, ctx.comm, mlp_options(3, ctx.comm.rank() == 2 ? 8 : 4));
  });
  EXPECT_TRUE(has(f.message, "pipeline options differ across ranks: rank 2 has microbatches=8, rank 0 has microbatches=4"))
      << f.message;
  EXPECT_EQ(f.ranks_with_errors, 3);
  f = fail(2, [&](RankContext& ctx) {
    PipeOptions o = mlp_options(2, 2);
    o.fingerprint = ctx.comm.rank() == 0 ? "lr=0.001 epochs=10" : "lr=0.01 epochs=10";
    Pipe pipe(model, ctx.comm, o);
  });
  EXPECT_TRUE(has(f.message, "rank 1 has lr=0.01, rank 0 has lr=0.001")) << f.message;
  EXPECT_EQ(f.ranks_with_errors, 2);
}

TEST(PipeErrors, TiedWeightsAcrossStages) {
  nn::GPTConfig cfg;
  cfg.vocab_size = 11;
  cfg.context = 4;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.d_model = 8;
  cfg.tie_weights = true;
  auto model = nn::make_gpt(cfg);
  const Failure f = fail(2, [&](RankContext& ctx) { Pipe pipe(model, ctx.comm, mlp_options(2, 2)); });
  EXPECT_TRUE(has(f.message, "tied weights across stages are not supported")) << f.message;
  EXPECT_EQ(f.ranks_with_errors, 2);
  run_ranks(1, [&](RankContext& ctx) { Pipe pipe(model, ctx.comm, mlp_options(1, 2)); });  // one stage is fine
}

TEST(PipeErrors, OtherBadOptions) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  auto error_of = [&](PipeOptions o) {
    return fail(1, [&](RankContext& ctx) { Pipe pipe(model, ctx.comm, o); }).message;
  };
  EXPECT_TRUE(has(error_of(mlp_options(1, 2, "1f1b", 2)), "--virtual 2 needs --schedule interleaved")) << "";
  EXPECT_TRUE(has(error_of(mlp_options(1, 2, "chimera")), "unknown schedule 'chimera'"));
  PipeOptions o = mlp_options(1, 2);
  o.partition = "time";
  EXPECT_TRUE(has(error_of(o), "partition 'time' needs a micro-batch"));
  o.partition = "even";
  EXPECT_TRUE(has(error_of(o), "unknown partition 'even'"));
  EXPECT_THROW(parse_checkpoint("sometimes"), Error);
}

// ---- the executor on its own ----

std::vector<Chunk> chunks_of(const std::shared_ptr<nn::Sequential>& model, const Program& p, int rank) {
  const Partition cut = uniform(static_cast<int>(model->size()), p.num_chunks);
  std::vector<Chunk> out;
  for (int c = 0; c < p.num_chunks; ++c)
    if (p.rank_of(c) == rank) {
      Chunk ch{c, model->slice(cut.begin(c), cut.end(c)), std::make_shared<RandomContext>(0)};
      ch.module->set_random_context(ch.random);
      out.push_back(ch);
    }
  return out;
}

MicroBatches one_batch(const test_util::Batch& b) {
  return {{b.x.size(0)}, {0}, {b.x}, {b.y}};
}

// A receive whose shape disagrees with what was sent: an error naming both ranks and the action.
TEST(ExecutorErrors, ReceivedShapeDisagreesWithTheSend) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const Program p = lower(one_f_one_b(2, 1));
  const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float32, 4, 2);
  const Failure f = fail(2, [&](RankContext& ctx) {
    std::vector<TensorSpec> specs(2);
    specs[1] = {{15}, DType::Float32};  // chunk 0 really sends [4, 16]
    Executor ex(p, ctx.comm.rank(), chunks_of(model, p, ctx.comm.rank()), ctx.comm, Checkpoint::Never, specs);
    ex.train_step(one_batch(batch), test_util::loss_of(ModelKind::Mlp), 0);
  });
  EXPECT_TRUE(has(f.message, "rank 1 recv from rank 0 (tag 0, 1RECV_F0): got float32 [4, 16] sent by 0SEND_F0, "
                             "expected float32 [4, 15]"))
      << f.message;
}

// A peer that never sends: the wait ends after the timeout, naming the rank, peer, tag and action.
TEST(ExecutorErrors, AMessageThatNeverComesTimesOut) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const Program p = lower(gpipe(2, 2));
  const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float32, 4, 2);
  std::string message;
  try {
    run_ranks(2, [&](RankContext& ctx) {
      if (ctx.comm.rank() == 0) return;  // rank 0 never runs its program
      std::vector<TensorSpec> specs(2);
      specs[1] = {{16}, DType::Float32};
      Executor ex(p, 1, chunks_of(model, p, 1), ctx.comm, Checkpoint::Never, specs);
      MicroBatches mb{{2, 2}, {0, 2}, {}, {ops::narrow(batch.y, 0, 0, 2), ops::narrow(batch.y, 0, 2, 2)}};
      ex.train_step(mb, test_util::loss_of(ModelKind::Mlp), 0);
    }, 0.3);
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_TRUE(has(message, "rank 1: rank 1 recv from rank 0 (tag 0, 1RECV_F0): nothing after 0.3 s")) << message;
}

TEST(ExecutorErrors, ProgramsItCannotRun) {
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  run_ranks(2, [&](RankContext& ctx) {
    std::vector<TensorSpec> specs(2);
    // Not lowered: messages are implicit, the executor needs them explicit.
    EXPECT_THROW(Executor(one_f_one_b(2, 2), ctx.comm.rank(), chunks_of(model, one_f_one_b(2, 2), ctx.comm.rank()),
                          ctx.comm, Checkpoint::Never, specs),
                 Error);
    // Another rank's chunk.
    const Program p = lower(one_f_one_b(2, 2));
    EXPECT_THROW(Executor(p, ctx.comm.rank(), chunks_of(model, p, 1 - ctx.comm.rank()), ctx.comm, Checkpoint::Never, specs),
                 Error);
  });
}

}  // namespace
}  // namespace minipipe::parallel
