// launch(): rank threads for `local` (each with its own OpenMP thread count and memory account; the
// first error cancels the others), one rank per process for `mpi`, either for `nccl` (whose
// communicator is built over the other); the intra-op thread budget; each rank's device.
#include "parallel/launch.h"

#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "parallel/comm_local.h"
#include "parallel/comm_mpi.h"
#include "parallel/nccl/comm_nccl.h"
#include "tensor/device.h"
#include "tensor/threads.h"

namespace minipipe::parallel {

Backend parse_backend(std::string_view name) {
  if (name == "local") return Backend::Local;
  if (name == "mpi") return Backend::Mpi;
  if (name == "nccl") return Backend::Nccl;
  MP_CHECK(false, "unknown communicator '", name, "' (expected local, mpi or nccl)");
  return Backend::Local;
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Local: return "local";
    case Backend::Mpi: return "mpi";
    case Backend::Nccl: return "nccl";
  }
  return "?";
}

bool started_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

Device rank_device(const std::string& spec, int local_rank) {
  if (spec != "cuda") return parse_device(spec);
  parse_device("cuda");  // checks the build and that there is a GPU
  return Device::cuda(local_rank % cuda_device_count());
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return std::max(1u, std::thread::hardware_concurrency());
  return std::max(1, CPU_COUNT(&set));
}

std::string RankContext::budget() const {
  std::string s = std::to_string(ranks_here) + (ranks_here == 1 ? " rank x " : " ranks x ") + std::to_string(threads) +
                  (threads == 1 ? " intra-op thread = " : " intra-op threads = ") +
                  std::to_string(ranks_here * threads) + " of " + std::to_string(cores) + " cores";
  if (oversubscribed()) s += " (oversubscribed: threads wait for cores)";
  return s;
}

namespace {

int budget_threads(int requested, int cores, int ranks_here) {
  MP_CHECK(requested >= 0, "threads per rank must be >= 0 (0: the budget), got ", requested);
  return requested > 0 ? requested : std::max(1, cores / std::max(1, ranks_here));
}

// nccl needs a GPU per rank: "cpu" (the default) means "cuda", and one GPU for several ranks is refused.
// Rank threads count the GPUs they see. MPI processes do not: each may see only its own GPU
// (CUDA_VISIBLE_DEVICES per process, SLURM's --gpus-per-task), so the NCCL communicator compares the
// GPUs' UUIDs instead and names the ranks that share one.
std::string nccl_device_spec(const LaunchOptions& opts, int ranks_here, bool count_gpus) {
  MP_CHECK(nccl_is_built(), "--comm nccl: this build of minipipe has no NCCL backend (it needs the CUDA toolkit "
           "with NCCL when configuring)");
  const std::string spec = opts.device == "cpu" ? "cuda" : opts.device;
  MP_CHECK(!count_gpus || spec == "cuda" || ranks_here == 1, "--comm nccl needs one GPU per rank, but --device ", spec,
           " puts all ", ranks_here, " ranks on one (ranks that share a GPU: --comm local or mpi with --device ", spec,
           ")");
  const int gpus = cuda_device_count();
  MP_CHECK(!count_gpus || ranks_here <= gpus, "--comm nccl needs one GPU per rank: ", ranks_here, " ranks on this machine, ", gpus,
           " GPU", gpus == 1 ? "" : "s", " (ranks that share a GPU: --comm local or mpi with --device cuda)");
  return spec;
}

void launch_local(const LaunchOptions& opts, const std::function<void(RankContext&)>& fn) {
  const int P = opts.ranks, cores = available_cores();
  const int threads = budget_threads(opts.threads_per_rank, cores, P);
  const bool nccl = opts.backend == Backend::Nccl;
  const std::string device = nccl ? nccl_device_spec(opts, P, true) : opts.device;
  std::vector<Device> devices;
  for (int r = 0; r < P; ++r) devices.push_back(rank_device(device, r));
  std::vector<std::shared_ptr<MemoryAccount>> accounts;
  for (int r = 0; r < P; ++r) accounts.push_back(std::make_shared<MemoryAccount>());
  auto comms = make_local_world(P);
  for (auto& c : comms) c->set_timeout(opts.timeout_s);

  std::mutex mu;
  std::exception_ptr first;  // the first real error (not an Aborted consequence of it)
  int first_rank = -1;
  std::exception_ptr any;
  auto body = [&](int r) {
    MemoryAccountGuard account(accounts[static_cast<size_t>(r)]);
    set_num_threads(threads);
    const Device dev = devices[static_cast<size_t>(r)];
    try {
      // nccl: the rank's NCCL communicator over its local one (a collective of the rank threads).
      std::unique_ptr<Communicator> over = nccl ? make_nccl(*comms[static_cast<size_t>(r)], dev.index) : nullptr;
      RankContext ctx{over ? *over : *comms[static_cast<size_t>(r)], threads, P, cores, accounts[static_cast<size_t>(r)], dev};
      fn(ctx);
    } catch (const Aborted&) {
      std::lock_guard<std::mutex> lk(mu);
      if (!any) any = std::current_exception();
    } catch (const std::exception& e) {
      {
        std::lock_guard<std::mutex> lk(mu);
        if (!first) {
          first = std::current_exception();
          first_rank = r;
        }
      }
      abort_local_world(*comms[static_cast<size_t>(r)], "rank " + std::to_string(r) + " failed: " + e.what());
    }
  };
  const int caller_threads = get_num_threads();
  std::vector<std::thread> workers;
  for (int r = 1; r < P; ++r) workers.emplace_back(body, r);
  body(0);  // rank 0 on the calling thread: one fewer thread, and a debugger's first stop
  for (auto& w : workers) w.join();
  set_num_threads(caller_threads);
  if (first) {
    try {
      std::rethrow_exception(first);
    } catch (const Error& e) {
      throw Error("rank " + std::to_string(first_rank) + ": " + e.what());
    }
  }
  if (any) std::rethrow_exception(any);
}

void launch_mpi(const LaunchOptions& opts, const std::function<void(RankContext&)>& fn) {
  std::unique_ptr<Communicator> comm = mpi_world();
  comm->set_timeout(opts.timeout_s);
  try {
    MP_CHECK(comm->size() == opts.ranks, "mpirun started ", comm->size(), " processes, but this job needs ", opts.ranks,
             " ranks: run mpirun -np ", opts.ranks);
    const int cores = available_cores(), here = mpi_ranks_on_this_machine();
    // mpirun may already have bound each process to its own cores: then they are all this rank's.
    const bool bound = cores < static_cast<int>(std::thread::hardware_concurrency());
    const int threads = budget_threads(opts.threads_per_rank, bound ? cores * here : cores, here);
    set_num_threads(threads);
    const bool nccl = opts.backend == Backend::Nccl;
    const Device dev = rank_device(nccl ? nccl_device_spec(opts, here, false) : opts.device, mpi_local_rank());
    // nccl: the NCCL communicator over MPI_COMM_WORLD (the unique ids travel over MPI).
    std::unique_ptr<Communicator> over = nccl ? make_nccl(*comm, dev.index) : nullptr;
    RankContext ctx{over ? *over : *comm, threads, here, bound ? cores * here : cores, current_memory_account(), dev};
    fn(ctx);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", comm->rank(), e.what());
    std::fflush(stderr);
    mpi_abort(1);
  }
}

}  // namespace

void launch(const LaunchOptions& opts, const std::function<void(RankContext&)>& fn) {
  MP_CHECK(opts.ranks >= 1, "launch: need at least 1 rank, got ", opts.ranks);
  // nccl runs as mpirun's processes when mpirun started this one, else as threads of this process.
  const bool processes = opts.backend == Backend::Mpi || (opts.backend == Backend::Nccl && started_by_mpirun());
  if (processes) launch_mpi(opts, fn);
  else launch_local(opts, fn);
}

}  // namespace minipipe::parallel
