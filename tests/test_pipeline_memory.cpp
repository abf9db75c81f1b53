// Activation memory, measured: the bytes each (chunk, micro-batch) keeps from its F to its B, on
// the rank's memory account. Every micro-batch of a chunk keeps the same; the measured peak per
// rank equals the simulator's prediction fed those bytes, for every schedule and checkpoint mode;
// checkpointing keeps exactly the chunk's input; blocking sends stash the same; and GPipe
// really holds more memory than 1F1B.
#include <gtest/gtest.h>

#include <mutex>

#include "parallel/generators.h"
#include "parallel/simulator.h"
#include "pipeline_models.h"

namespace minipipe::parallel {
namespace {

using test_util::ModelKind;

constexpr int kM = 8;
constexpr int64_t kRows = 16;

struct Measured {
  Program program;
  std::vector<int64_t> stash;  // per (chunk, micro-batch): c * M + m
  std::vector<int64_t> peak;   // per rank
  std::vector<int64_t> peak_live;
};

Measured measure(const std::string& schedule, int P, Checkpoint ckpt, bool async_sends = true) {
  const auto batch = test_util::make_batch(ModelKind::Mlp, DType::Float64, kRows, 1);
  auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.1, 5);
  Measured out;
  out.peak.assign(static_cast<size_t>(P), -1);
  out.peak_live.assign(static_cast<size_t>(P), -1);
  std::mutex mu;
  test_util::run_ranks(P, [&](RankContext& ctx) {
    PipeOptions o;
    o.stages = P;
    o.microbatches = kM;
    o.schedule = schedule;
    o.virtual_chunks = schedule == "interleaved" ? 2 : 1;
    o.checkpoint = ckpt;
    o.loss = test_util::loss_of(ModelKind::Mlp);
    o.async_sends = async_sends;
    Pipe pipe(model, ctx.comm, o);
    pipe.train_step(batch.x, batch.y);
    pipe.zero_grad();
    pipe.train_step(batch.x, batch.y);  // the second step: gradients are allocated afresh the same way
    const Executor& ex = pipe.executor();
    // What the bookkeeping calls stashed is memory the rank really holds: at every action, the
    // step's share of the rank's account (stashes, messages, gradients) is at least the stash.
    for (const ActionRecord& r : ex.records())
      EXPECT_GE(r.live_bytes - ex.live_at_start(), r.stash_bytes) << to_string(r.action) << " on rank " << ctx.comm.rank();
    std::lock_guard<std::mutex> lk(mu);
    if (out.stash.empty()) {
      out.program = pipe.program();
      out.stash.assign(ex.stash_bytes().size(), -1);
    }
    for (size_t i = 0; i < ex.stash_bytes().size(); ++i)
      if (ex.stash_bytes()[i] >= 0) out.stash[i] = ex.stash_bytes()[i];
    out.peak[static_cast<size_t>(ctx.comm.rank())] = ex.peak_stash_bytes();
    int64_t live = 0;
    for (const ActionRecord& r : ex.records()) live = std::max(live, r.live_bytes);
    out.peak_live[static_cast<size_t>(ctx.comm.rank())] = live;
  });
  return out;
}

// Chunk c's measured bytes, after checking every micro-batch kept the same.
std::vector<double> per_chunk(const Measured& m) {
  std::vector<double> bytes;
  for (int c = 0; c < m.program.num_chunks; ++c) {
    const int64_t first = m.stash[static_cast<size_t>(c * kM)];
    EXPECT_GE(first, 0) << "chunk " << c;
    for (int mb = 1; mb < kM; ++mb) EXPECT_EQ(m.stash[static_cast<size_t>(c * kM + mb)], first) << "chunk " << c << " micro-batch " << mb;
    bytes.push_back(static_cast<double>(first));
  }
  return bytes;
}

struct Case {
  std::string schedule;
  int stages;
};

class StashMemory : public ::testing::TestWithParam<Case> {};

// Each rank's measured peak against the simulator's prediction for the program that ran, fed the
// measured bytes per chunk.
void expect_peaks_as_simulated(const Measured& m) {
  Costs costs = Costs::uniform(m.program.num_chunks, 1.0, 1.0);
  costs.activation_bytes = per_chunk(m);
  const Simulation sim = simulate(m.program, costs);
  for (int r = 0; r < m.program.num_ranks; ++r)
    EXPECT_EQ(static_cast<double>(m.peak[static_cast<size_t>(r)]), sim.ranks[static_cast<size_t>(r)].peak_inflight_bytes)
        << "rank " << r;
}

TEST_P(StashMemory, MeasuredPeakEqualsTheSimulatorsPrediction) {
  const auto [schedule, P] = GetParam();
  for (Checkpoint ckpt : {Checkpoint::Never, Checkpoint::ExceptLast, Checkpoint::Always}) {
    SCOPED_TRACE(std::string("checkpoint ") + checkpoint_name(ckpt));
    expect_peaks_as_simulated(measure(schedule, P, ckpt));
  }
}

// Sends that do not block (the default) hold a sent output until its receiver takes it; what the
// output frees is counted when the send finishes, so each (chunk, micro-batch) stashes the same
// bytes as with blocking sends, whose peak also equals the simulator's for the program that ran.
TEST_P(StashMemory, BlockingAndAsynchronousSendsStashTheSameBytes) {
  const auto [schedule, P] = GetParam();
  for (Checkpoint ckpt : {Checkpoint::Never, Checkpoint::Always}) {
    SCOPED_TRACE(std::string("checkpoint ") + checkpoint_name(ckpt));
    const Measured blocking = measure(schedule, P, ckpt, false), async = measure(schedule, P, ckpt);
    ASSERT_TRUE(async.program.async_sends);
    ASSERT_FALSE(blocking.program.async_sends);
    EXPECT_EQ(async.stash, blocking.stash);
    expect_peaks_as_simulated(blocking);
  }
}

TEST_P(StashMemory, CheckpointingKeepsExactlyTheInput) {
  const auto [schedule, P] = GetParam();
  const Measured never = measure(schedule, P, Checkpoint::Never), always = measure(schedule, P, Checkpoint::Always);
  const auto full = per_chunk(never), ckpt = per_chunk(always);
  const auto model = test_util::build_model(ModelKind::Mlp, DType::Float64, 0.1, 5);
  const Partition cut = uniform(static_cast<int>(model->size()), always.program.num_chunks);
  const int64_t rows = kRows / kM;
  Tensor h = zeros({rows, 6}, DType::Float64);
  for (int c = 0; c < always.program.num_chunks; ++c) {
    // Chunk c's input is the previous chunk's output: a received [rows, width] float64 tensor
    // (chunk 0 reads a view of the caller's batch: nothing of its own to keep).
    EXPECT_EQ(ckpt[static_cast<size_t>(c)], c == 0 ? 0.0 : static_cast<double>(h.nbytes())) << "chunk " << c;
    // Without checkpointing a chunk keeps more — unless it is one layer that saves only its input
    // (a ReLU) or nothing new (a Linear on the caller's batch), as interleaving's small chunks can be.
    if (cut.end(c) - cut.begin(c) >= 2) EXPECT_GT(full[static_cast<size_t>(c)], ckpt[static_cast<size_t>(c)]) << "chunk " << c;
    else EXPECT_GE(full[static_cast<size_t>(c)], ckpt[static_cast<size_t>(c)]) << "chunk " << c;
    NoGradGuard no_grad;
    model->eval();
    h = model->slice(cut.begin(c), cut.end(c))->forward(h);
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* s : {"gpipe", "1f1b", "interleaved"})
    for (int P : {2, 3, 4}) out.push_back({s, P});
  return out;
}
INSTANTIATE_TEST_SUITE_P(Pipeline, StashMemory, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.schedule + "_P" + std::to_string(info.param.stages); });

// Rank 0 under GPipe holds all 8 micro-batches' activations at its peak, under 1F1B only P = 2:
// the difference shows in the rank's whole memory account, not only in the stash bookkeeping.
TEST(StashMemoryLive, GPipeHoldsMoreThanOneFOneBOnTheFirstRank) {
  const Measured gpipe = measure("gpipe", 2, Checkpoint::Never), ofob = measure("1f1b", 2, Checkpoint::Never);
  const double per_mb = per_chunk(gpipe)[0];
  EXPECT_EQ(gpipe.peak[0], static_cast<int64_t>(kM * per_mb));
  EXPECT_EQ(ofob.peak[0], static_cast<int64_t>(2 * per_mb));
  // The whole account also holds transients (outputs sent but not yet taken by the next rank, a
  // gradient just received) that can move either peak by up to two micro-batches' bytes.
  EXPECT_GE(gpipe.peak_live[0] - ofob.peak_live[0], static_cast<int64_t>((kM - 2 - 2) * per_mb));
}

}  // namespace
}  // namespace minipipe::parallel
