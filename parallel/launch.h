// Starting ranks, SPMD-style: the same function runs on every rank with that rank's runtime
// context — its communicator, its intra-op thread budget, its memory account. `local` starts the
// ranks as threads of this process; under `mpi` this process is one of the ranks mpirun started.
// Nothing a rank uses is process-wide by accident: each rank thread sets its own OpenMP thread
// count, charges its own memory account, and layers draw from per-chunk RandomContexts (pipe.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "parallel/communicator.h"
#include "tensor/storage.h"

namespace minipipe::parallel {

// local: ranks are threads; mpi: processes under mpirun; nccl: a GPU per rank, as processes under
// mpirun or, started without mpirun, as threads of this process (nccl/comm_nccl.h).
enum class Backend { Local, Mpi, Nccl };
Backend parse_backend(std::string_view name);  // "local", "mpi", "nccl"; anything else is an Error
const char* backend_name(Backend b);

struct LaunchOptions {
  Backend backend = Backend::Local;
  int ranks = 1;             // local: the threads to start; mpi: must equal mpirun's process count
  int threads_per_rank = 0;  // intra-op threads per rank; 0: the budget, cores here / ranks here (>= 1)
  double timeout_s = 300;    // how long one communication may wait (Communicator::set_timeout)
  // Where each rank computes: "cpu"; "cuda": one GPU per rank, rank r on GPU (r's index on this
  // machine) mod GPUs; "cuda:N": every rank on GPU N. nccl: "cuda" (implied by "cpu", the default).
  std::string device = "cpu";
};

struct RankContext {
  Communicator& comm;
  int threads = 1;     // intra-op threads this rank runs with
  int ranks_here = 1;  // ranks sharing this machine
  int cores = 1;       // CPUs this process may run on
  std::shared_ptr<MemoryAccount> memory;  // this rank's allocations are charged here
  Device device = Device::cpu();          // where this rank computes (LaunchOptions::device)
  bool oversubscribed() const { return ranks_here * threads > cores; }
  std::string budget() const;  // "2 ranks x 1 intra-op thread = 2 of 2 cores"
};

// Runs fn on every rank; returns when every rank has returned. When a rank throws: on `local` (and
// `nccl` without mpirun) the other ranks' waits are cancelled (they throw Aborted), all threads are
// joined, and launch rethrows the first error with "rank r: " in front; under mpirun the rank
// prints its error to stderr and ends the whole job with MPI_Abort (exit status 1), since the
// others would wait for it.
void launch(const LaunchOptions& opts, const std::function<void(RankContext&)>& fn);

// The CPUs this process may run on (its affinity mask), at least 1.
int available_cores();

// Whether this process was started by mpirun (OpenMPI's or a PMI launcher's environment).
bool started_by_mpirun();

// The device of the rank with index `local_rank` among this machine's ranks (LaunchOptions::device).
Device rank_device(const std::string& spec, int local_rank);

}  // namespace minipipe::parallel
