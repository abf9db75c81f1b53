// The shared communicator suite (comm_suite.h) on the `mpi` backend: ctest runs this program under
// `mpirun -np 2` and `-np 3` (CMakeLists.txt); every process runs every test on MPI_COMM_WORLD.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "comm_suite.h"
#include "mpi_main.h"
#include "parallel/trace.h"

namespace minipipe::parallel {
namespace {

using mpi_test::world;

TEST(MpiSuite, RankValuedAllReduce) { comm_suite::rank_valued_all_reduce(*world); }
TEST(MpiSuite, AllReduceSumsInRankOrder) { comm_suite::all_reduce_sums_in_rank_order(*world); }
TEST(MpiSuite, NonblockingAllReduce) { comm_suite::nonblocking_all_reduce(*world); }
TEST(MpiSuite, BroadcastFromEveryRoot) { comm_suite::broadcast_from_every_root(*world); }
TEST(MpiSuite, MessageOrderPerTag) { comm_suite::message_order_per_tag(*world); }
TEST(MpiSuite, ReceivesMatchInPostingOrder) { comm_suite::receives_match_in_posting_order(*world); }
TEST(MpiSuite, ReceiverNeverAliasesTheSender) { comm_suite::receiver_never_aliases_the_sender(*world); }
TEST(MpiSuite, LargeTensors) { comm_suite::large_tensors(*world); }
TEST(MpiSuite, SubGroups) { comm_suite::sub_groups(*world); }
TEST(MpiSuite, ShapeMismatchNamesBothRanks) { comm_suite::shape_mismatch_names_both_ranks(*world); }
TEST(MpiSuite, ReceiveTimesOut) { comm_suite::receive_times_out(*world); }
TEST(MpiSuite, AllReduceShapeMismatchFailsEverywhere) {
  comm_suite::all_reduce_shape_mismatch_fails_everywhere(*world);
}
TEST(MpiSuite, BadArguments) { comm_suite::bad_arguments(*world); }

// The processes share one machine, hence one CLOCK_MONOTONIC: every true offset is 0, so what
// measure_clock_offsets reports is its error, which must stay within its own bound (half the
// shortest round trip). Prints the figures docs/pipeline.md quotes.
TEST(MpiClocks, OffsetsOnOneMachineAreWithinHalfTheRoundTrip) {
  std::vector<double> rtt;
  const std::vector<double> off = measure_clock_offsets(*world, 16, &rtt);
  ASSERT_EQ(off.size(), static_cast<size_t>(world->size()));
  ASSERT_EQ(rtt.size(), off.size());
  EXPECT_EQ(off[0], 0.0);
  for (int r = 1; r < world->size(); ++r) {
    EXPECT_GT(rtt[r], 0.0) << "rank " << r;
    EXPECT_LE(std::fabs(off[r]), 0.5 * rtt[r] + 1e-9) << "rank " << r << ": offset " << off[r] << " s, round trip "
                                                     << rtt[r] << " s";
    if (world->rank() == 0)
      std::printf("clock offset of rank %d: %+.2f us (true offset 0), shortest round trip %.2f us\n", r, 1e6 * off[r],
                  1e6 * rtt[r]);
  }
}

}  // namespace
}  // namespace minipipe::parallel

int main(int argc, char** argv) { return minipipe::parallel::mpi_test::run_all(argc, argv); }
