// Tests of the `local` communicator and launch(): the shared suite (comm_suite.h) on 2, 3 and 8
// rank threads, and what only threads-as-ranks have — an error on one rank cancelling the others'
// waits, received messages charged to the receiver's memory account, the intra-op thread budget.
#include <gtest/gtest.h>

#include <atomic>

#include "comm_suite.h"
#include "parallel/comm_local.h"
#include "parallel/launch.h"
#include "tensor/device.h"
#include "tensor/threads.h"

namespace minipipe::parallel {
namespace {

void run(int ranks, const std::function<void(Communicator&)>& fn) {
  LaunchOptions opts;
  opts.ranks = ranks;
  opts.threads_per_rank = 1;
  opts.timeout_s = 60;
  launch(opts, [&](RankContext& ctx) { fn(ctx.comm); });
}

class LocalSuite : public ::testing::TestWithParam<int> {};

TEST_P(LocalSuite, RankValuedAllReduce) { run(GetParam(), comm_suite::rank_valued_all_reduce); }
TEST_P(LocalSuite, AllReduceSumsInRankOrder) { run(GetParam(), comm_suite::all_reduce_sums_in_rank_order); }
TEST_P(LocalSuite, NonblockingAllReduce) { run(GetParam(), comm_suite::nonblocking_all_reduce); }
TEST_P(LocalSuite, BroadcastFromEveryRoot) { run(GetParam(), comm_suite::broadcast_from_every_root); }
TEST_P(LocalSuite, MessageOrderPerTag) { run(GetParam(), comm_suite::message_order_per_tag); }
TEST_P(LocalSuite, ReceivesMatchInPostingOrder) { run(GetParam(), comm_suite::receives_match_in_posting_order); }
TEST_P(LocalSuite, ReceiverNeverAliasesTheSender) { run(GetParam(), comm_suite::receiver_never_aliases_the_sender); }
TEST_P(LocalSuite, LargeTensors) { run(GetParam(), comm_suite::large_tensors); }
TEST_P(LocalSuite, SubGroups) { run(GetParam(), comm_suite::sub_groups); }
TEST_P(LocalSuite, ShapeMismatchNamesBothRanks) { run(GetParam(), comm_suite::shape_mismatch_names_both_ranks); }
TEST_P(LocalSuite, ReceiveTimesOut) { run(GetParam(), comm_suite::receive_times_out); }
TEST_P(LocalSuite, AllReduceShapeMismatchFailsEverywhere) {
  run(GetParam(), comm_suite::all_reduce_shape_mismatch_fails_everywhere);
}
TEST_P(LocalSuite, BadArguments) { run(GetParam(), comm_suite::bad_arguments); }

INSTANTIATE_TEST_SUITE_P(Ranks, LocalSuite, ::testing::Values(2, 3, 8),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

// Rank 2 fails at once; the others are blocked in a receive with a 10-minute timeout and a
// barrier. launch must cancel them (Aborted, not a timeout) and rethrow rank 2's error.
TEST(LocalLaunch, AnErrorOnOneRankStopsAllRanks) {
  std::atomic<int> aborted{0}, timed_out{0};
  LaunchOptions opts;
  opts.ranks = 4;
  opts.threads_per_rank = 1;
  opts.timeout_s = 600;
  try {
    launch(opts, [&](RankContext& ctx) {
      if (ctx.comm.rank() == 2) throw Error("boom");
      try {
        if (ctx.comm.rank() == 1) ctx.comm.recv({{1}, DType::Float32}, 3, 0, "1RECV_F0");
        ctx.comm.barrier();
      } catch (const Aborted& e) {
        ++aborted;
        EXPECT_NE(std::string(e.what()).find("stopped because rank 2 failed: boom"), std::string::npos) << e.what();
        throw;
      } catch (const Error&) {
        ++timed_out;
        throw;
      }
    });
    FAIL() << "launch returned normally";
  } catch (const Aborted& e) {
    FAIL() << "launch rethrew a consequence, not the cause: " << e.what();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rank 2: boom");
  }
  EXPECT_EQ(aborted.load(), 3);
  EXPECT_EQ(timed_out.load(), 0);
}

// A receive that timed out is taken back: the next message on that tag goes to the next receive.
TEST(LocalLaunch, AReceiveThatTimedOutDoesNotSwallowTheNextMessage) {
  LaunchOptions opts;
  opts.ranks = 2;
  opts.threads_per_rank = 1;
  opts.timeout_s = 60;
  launch(opts, [&](RankContext& ctx) {
    if (ctx.comm.rank() == 1) {
      ctx.comm.set_timeout(0.2);
      EXPECT_THROW(ctx.comm.recv({{1}, DType::Float64}, 0, 3), Error);
      ctx.comm.set_timeout(60);
      ctx.comm.send(zeros({1}), 0, 4);  // now rank 0 may send
      EXPECT_EQ(ctx.comm.recv({{1}, DType::Float64}, 0, 3).item(), 7.0);
    } else {
      ctx.comm.recv({{1}, DType::Float32}, 1, 4);
      ctx.comm.send(full({1}, 7.0, DType::Float64), 1, 3);
    }
  });
}

TEST(LocalLaunch, ReceivedMessagesAreChargedToTheReceiver) {
  LaunchOptions opts;
  opts.ranks = 2;
  opts.threads_per_rank = 1;
  launch(opts, [&](RankContext& ctx) {
    const int64_t before = ctx.memory->live();
    ctx.comm.barrier();  // both measured before the send
    if (ctx.comm.rank() == 0) {
      ctx.comm.send(zeros({1000}, DType::Float64), 1, 0);
      ctx.comm.barrier();
      EXPECT_EQ(ctx.memory->live(), before);  // the copy went to rank 1
    } else {
      Tensor got = ctx.comm.recv({{1000}, DType::Float64}, 0, 0);
      EXPECT_EQ(ctx.memory->live(), before + 8000);
      ctx.comm.barrier();
    }
  });
}

TEST(LocalLaunch, EachRankRunsWithItsThreadBudget) {
  const int caller = get_num_threads(), cores = available_cores();
  for (int requested : {0, 3}) {
    LaunchOptions opts;
    opts.ranks = 2;
    opts.threads_per_rank = requested;
    std::atomic<int> seen_ok{0};
    launch(opts, [&](RankContext& ctx) {
      const int expect = requested > 0 ? requested : std::max(1, cores / 2);
      EXPECT_EQ(ctx.threads, expect);
      if (get_num_threads() == expect) ++seen_ok;  // this thread's own OpenMP count
      EXPECT_EQ(ctx.oversubscribed(), 2 * expect > cores);
      EXPECT_NE(ctx.budget().find("2 ranks x " + std::to_string(expect)), std::string::npos) << ctx.budget();
    });
    EXPECT_EQ(seen_ok.load(), 2);
  }
  EXPECT_EQ(get_num_threads(), caller);  // the calling thread ran rank 0 and got its count back
}

// Rank threads call OpenBLAS at the same time (one intra-op thread each, its packing buffers shared
// through its own locks): small-integer GEMMs, exact in float64, must come out bit for bit.
TEST(LocalLaunch, ConcurrentGemmsOnRankThreadsAreExact) {
  Tensor a = ops::reshape(ops::sub(arange(96 * 96, DType::Float64), full({96 * 96}, 4608.0, DType::Float64)), {96, 96});
  Tensor b = ops::transpose(a, 0, 1);
  const std::vector<double> want = ops::matmul(a, b).to_vector<double>();
  std::atomic<int> wrong{0};
  LaunchOptions opts;
  opts.ranks = 2;
  opts.threads_per_rank = 1;
  launch(opts, [&](RankContext&) {
    for (int i = 0; i < 2000; ++i)
      if (ops::matmul(a, b).to_vector<double>() != want) ++wrong;
  });
  EXPECT_EQ(wrong.load(), 0);
}

TEST(LocalLaunch, OneRankRunsOnTheCallingThread) {
  std::thread::id id;
  launch({}, [&](RankContext& ctx) {
    id = std::this_thread::get_id();
    EXPECT_EQ(ctx.comm.size(), 1);
  });
  EXPECT_TRUE(id == std::this_thread::get_id());
}

TEST(LocalLaunch, BadOptions) {
  LaunchOptions opts;
  opts.ranks = 0;
  EXPECT_THROW(launch(opts, [](RankContext&) {}), Error);
  EXPECT_THROW(parse_backend("gloo"), Error);
  EXPECT_EQ(parse_backend("mpi"), Backend::Mpi);
  EXPECT_EQ(parse_backend("nccl"), Backend::Nccl);
  EXPECT_STREQ(backend_name(Backend::Nccl), "nccl");
  EXPECT_THROW(rank_device("tpu", 0), Error);
  EXPECT_EQ(rank_device("cpu", 3), Device::cpu());
  if (cuda_device_count() == 0) {  // asking for a GPU where there is none: an error naming it
    opts.ranks = 1;
    opts.device = "cuda";
    EXPECT_THROW(launch(opts, [](RankContext&) {}), Error);
    opts.backend = Backend::Nccl;
    opts.device = "cpu";
    EXPECT_THROW(launch(opts, [](RankContext&) {}), Error);
  } else {  // "cuda": rank r on GPU r mod GPUs
    EXPECT_EQ(rank_device("cuda", cuda_device_count()), Device::cuda(0));
    EXPECT_EQ(rank_device("cuda", 1), Device::cuda(1 % cuda_device_count()));
  }
}

}  // namespace
}  // namespace minipipe::parallel
