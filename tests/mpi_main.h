// The main() of the mpi_test_* programs: MPI_COMM_WORLD as `world`, every test run on every
// process; rank 0 prints gtest's report, the other ranks print only their failures (each rank's
// failures set its exit status, so mpirun fails when any rank does).
#pragma once

#include <gtest/gtest.h>

#include <cstdio>

#include "parallel/comm_mpi.h"

namespace minipipe::parallel::mpi_test {

inline Communicator* world = nullptr;

// Prints each failed assertion with this rank's number.
class RankFailures : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailures(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "rank %d: %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                   r.message());
  }

 private:
  int rank_;
};

inline int run_all(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = mpi_world();
  comm->set_timeout(60);
  world = comm.get();
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailures(comm->rank()));
  }
  const int rc = RUN_ALL_TESTS();
  comm->barrier();
  return rc;
}

}  // namespace minipipe::parallel::mpi_test
