// The `mpi` communicator: one process per rank, started by `mpirun -np N` on one machine or many
// (OpenMPI from Debian). Built when CMake finds MPI (MINIPIPE_MPI=AUTO/ON); otherwise asking for it
// is a clear error. Messages and collectives never block inside MPI: each is posted non-blocking and
// polled against the communicator's timeout, so a message that never comes ends the run with an
// error instead of a hang. (split, MPI_Comm_split, is the one blocking call.)
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace minipipe::parallel {

// Whether this build has the MPI backend.
bool mpi_is_built();

// MPI_COMM_WORLD as a Communicator; initialises MPI on first use (MPI_Init_thread) and finalises it
// at exit. Throws an Error naming the missing package when the build has no MPI.
std::unique_ptr<Communicator> mpi_world();

// Prints nothing; ends every process of the job with `code` (MPI_Abort). For a rank whose error was
// already printed: the others would otherwise wait for it until their timeout.
[[noreturn]] void mpi_abort(int code);

// Ranks of this job on this machine (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED), for the
// intra-op thread budget.
int mpi_ranks_on_this_machine();
// This process's index among them (which GPU of the machine is its own).
int mpi_local_rank();

}  // namespace minipipe::parallel
