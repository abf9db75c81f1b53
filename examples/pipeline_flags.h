// What train_mlp and train_gpt share: the pipeline flags (--stages, --microbatches, --schedule,
// --virtual, --checkpoint, --comm, --device, --partition, --threads, --comm-timeout, --stage-replicas, and the
// asynchronous schedules' --window, --no-weight-stashing, --vertical-sync), the
// data-parallel ones (--dp, --bucket-mb, --no-overlap, --zero1), the launch, Pipe and DataParallel
// options they make,
// the fingerprint every rank checks, and the lines printed at start and end.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "nn/optim.h"
#include "parallel/data_parallel.h"
#include "parallel/grid.h"
#include "parallel/launch.h"
#include "parallel/pipe.h"
#ifdef MINIPIPE_CUDA
#include "tensor/cuda/runtime.h"
#endif

namespace minipipe::examples {

struct PipelineFlags {
  int stages = 1;
  int microbatches = 1;
  std::string schedule = "1f1b";
  int virtual_chunks = 1;
  std::string checkpoint = "never";
  std::string comm = "local";
  std::string device = "cpu";
  std::string partition = "uniform";
  int threads = 0;
  double comm_timeout = 300;
  int dp = 1;
  double bucket_mb = 25;
  bool no_overlap = false;
  bool zero1 = false;
  std::vector<int> stage_replicas;  // 1F1B-RR: ranks per stage (empty: one each)
  int window = 0;                   // 2bw: micro-batches per update (0: all of a step)
  bool no_weight_stashing = false;  // pipedream: B reads the newest weights (teaching)
  bool vertical_sync = false;       // pipedream: every stage reads stage 0's version
  bool blocking_sends = false;      // sends that wait for their receives (lower(); default: lower_async)

  void add_to(CLI::App& app) {
    app.add_option("--stages", stages, "pipeline stages P (ranks)")->capture_default_str();
    app.add_option("--microbatches", microbatches, "micro-batches M per batch")->capture_default_str();
    app.add_option("--schedule", schedule,
                   "pipeline schedule: gpipe, 1f1b, interleaved, zb-h1 or zb-h2 (zero bubble: B and W split), or the "
                   "asynchronous pipedream (an optimizer step per micro-batch, weight stashing) and 2bw (an update "
                   "per --window micro-batches, one step of delay)")
        ->capture_default_str();
    app.add_option("--window", window, "2bw: micro-batches per weight update, >= stages - 1 or all of a step (0: all of a step)")
        ->capture_default_str();
    app.add_flag("--no-weight-stashing", no_weight_stashing,
                 "pipedream: backward reads the newest weights, not its forward's (shows what stashing fixes)");
    app.add_flag("--vertical-sync", vertical_sync, "pipedream: every stage reads the weight version stage 0 read");
    app.add_option("--virtual", virtual_chunks, "chunks per rank (interleaved)")->capture_default_str();
    app.add_flag("--blocking-sends", blocking_sends,
                 "sends that wait until their receive is posted (the rendezvous lowering); default: sends that "
                 "do not block, a rank waits only for data it needs next");
    app.add_option("--checkpoint", checkpoint, "activation checkpointing: never, except_last or always")
        ->capture_default_str();
    app.add_option("--comm", comm,
                   "communicator: local (ranks are threads), mpi (run under mpirun -np P) or nccl (a GPU per rank: "
                   "threads, or processes under mpirun)")
        ->capture_default_str();
    app.add_option("--device", device,
                   "where ranks compute: cpu, cuda (a GPU per rank, rank r on GPU r mod GPUs) or cuda:N (every rank "
                   "on GPU N); --comm nccl implies cuda")
        ->capture_default_str();
    app.add_option("--partition", partition, "how to cut the model: uniform, params or time (profiled)")
        ->capture_default_str();
    app.add_option("--threads", threads, "intra-op threads per rank (0: cores / ranks on this machine)")
        ->capture_default_str();
    app.add_option("--comm-timeout", comm_timeout, "seconds a rank waits for one message before failing")
        ->capture_default_str();
    app.add_option("--dp", dp, "data-parallel replicas R of the pipeline (world = stages x dp ranks)")
        ->capture_default_str();
    app.add_option("--bucket-mb", bucket_mb, "data parallel: gradient bucket size in MiB")->capture_default_str();
    app.add_flag("--no-overlap", no_overlap, "data parallel: reduce gradients after backward, not during it");
    app.add_flag("--zero1", zero1, "data parallel: shard the optimizer state over the replicas (ZeRO stage 1)");
    app.add_option("--stage-replicas", stage_replicas,
                   "ranks per stage, e.g. 2,1 (PipeDream's 1F1B-RR: micro-batch m runs stage s on replica m mod R_s; "
                   "world = their sum; gpipe or 1f1b)")
        ->delimiter(',');
  }

  // The ranks the job runs on: stages x dp, or the sum of the stage replicas.
  int world() const {
    return stage_replicas.empty() ? stages * dp : std::accumulate(stage_replicas.begin(), stage_replicas.end(), 0);
  }

  // Bad combinations, before anything starts (the Pipe checks the rest on every rank).
  void check() const {
    if (stage_replicas.empty()) return;
    MP_CHECK(static_cast<int>(stage_replicas.size()) == stages, "--stage-replicas lists ", stage_replicas.size(),
             " stages but --stages is ", stages);
    MP_CHECK(dp == 1, "--stage-replicas and --dp ", dp, " do not combine: replicate stages or whole pipelines");
    for (int R : stage_replicas) MP_CHECK(R >= 1, "--stage-replicas: every stage needs at least 1 rank, got ", R);
  }

  // Rows of the batch each replica trains on: a batch of B splits into dp shards of B/dp rows,
  // each into M micro-batches.
  void check_batch(int64_t batch) const {
    MP_CHECK(dp >= 1 && microbatches >= 1 && batch % (static_cast<int64_t>(dp) * microbatches) == 0, "--batch ",
             batch, " does not split into --dp ", dp, " replicas x --microbatches ", microbatches,
             " of equal size (needs a multiple of ", static_cast<int64_t>(dp) * microbatches, ")");
  }

  parallel::DataParallelOptions data_parallel() const {
    return {.bucket_mb = bucket_mb, .overlap = !no_overlap, .backwards_per_step = microbatches, .zero1 = zero1};
  }

  // Replicas of the model this process must build: one per replica under `local` (the ranks are
  // threads of this process), one under `mpi` (each process is one rank). With stage replicas, one
  // per replica index: ranks of different stages touch different layers of one copy.
  int model_copies() const {
    if (comm == "mpi" || (comm == "nccl" && parallel::started_by_mpirun())) return 1;
    return stage_replicas.empty() ? dp : *std::max_element(stage_replicas.begin(), stage_replicas.end());
  }
  // Which copy rank `world_rank` of `grid` trains.
  int copy_of(int world_rank, const parallel::Grid& grid) const {
    if (model_copies() == 1) return 0;
    if (stage_replicas.empty()) return grid.replica;
    for (int s = 0, first = 0; s < stages; first += stage_replicas[static_cast<size_t>(s)], ++s)
      if (world_rank < first + stage_replicas[static_cast<size_t>(s)]) return world_rank - first;
    return 0;
  }
  // The grid: pp x dp, or (stage replicas) the whole world as one pipeline.
  parallel::Grid grid(parallel::Communicator& world_comm) const {
    return parallel::make_grid(world_comm, stage_replicas.empty() ? stages : world(), stage_replicas.empty() ? dp : 1);
  }

  parallel::LaunchOptions launch() const {
    parallel::LaunchOptions o;
    o.backend = parallel::parse_backend(comm);
    o.ranks = world();
    o.threads_per_rank = threads;
    o.timeout_s = comm_timeout;
    o.device = device;
    return o;
  }

  // The Pipe of one rank of `grid`; `fingerprint` (the command line) is checked over the whole
  // world first, so ranks started with different flags stop at once, replicas included.
  parallel::PipeOptions pipe(const parallel::RankContext& ctx, const parallel::Grid& grid, uint64_t seed,
                             parallel::LossFn loss, Tensor profile_sample, const std::string& fingerprint) const {
    parallel::check_same_on_all_ranks(ctx.comm, fingerprint, "flags");
    parallel::PipeOptions o;
    o.stages = stages;
    o.microbatches = microbatches;
    o.schedule = schedule;
    o.virtual_chunks = virtual_chunks;
    o.checkpoint = parallel::parse_checkpoint(checkpoint);
    o.partition = partition;
    o.profile_sample = std::move(profile_sample);
    o.seed = seed;
    o.loss = std::move(loss);
    o.fingerprint = fingerprint;
    o.replicas = grid.data.get();
    o.stage_replicas = stage_replicas;
    o.window = window;
    o.weight_stashing = !no_weight_stashing;
    o.vertical_sync = vertical_sync;
    o.async_sends = !blocking_sends;
    o.device = ctx.device;
    return o;
  }
};

// Every option of `app` as key=value (spaces in values as %20): what check_same_on_all_ranks
// compares, so ranks started with different flags stop at once.
inline std::string fingerprint(const CLI::App& app) {
  std::string out;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_name().empty() || opt->get_name() == "--help") continue;
    std::string value;
    for (const std::string& r : opt->results()) value += (value.empty() ? "" : ",") + r;
    std::string escaped;
    for (char c : value) escaped += c == ' ' ? std::string("%20") : std::string(1, c);
    out += opt->get_name() + "=" + escaped + " ";
  }
  return out;
}

// Rank 0 says how the job runs: the thread budget, the rank grid and the pipeline (partition and
// schedule).
inline void print_start(const parallel::RankContext& ctx, const parallel::Grid& grid, const parallel::Pipe& pipe) {
  if (ctx.comm.rank() != 0) return;
  std::printf("%s communicator, %s\n", ctx.comm.backend(), ctx.budget().c_str());
  if (grid.dp > 1) std::printf("%s", grid.placement().c_str());
  std::printf("%s", pipe.describe().c_str());
  std::fflush(stdout);
}

// Bytes as B, KiB or MiB.
inline std::string format_bytes(double b) {
  char buf[32];
  if (b < 1024) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else if (b < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  else std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024 * 1024));
  return buf;
}

// Collective: one number per rank, printed by rank 0 as "label: 1.00 MiB on rank 0, ...".
inline void print_per_rank(const parallel::RankContext& ctx, const std::string& label, int64_t bytes) {
  Tensor all = zeros({ctx.comm.size()}, DType::Int64);
  all.data_ptr<int64_t>()[ctx.comm.rank()] = bytes;
  ctx.comm.all_reduce(all);
  if (ctx.comm.rank() != 0) return;
  std::printf("%s:", label.c_str());
  for (int r = 0; r < ctx.comm.size(); ++r)
    std::printf("%s %s on rank %d", r ? "," : "", format_bytes(static_cast<double>(all.data_ptr<int64_t>()[r])).c_str(), r);
  std::printf("\n");
}

// Rank 0: how the data-parallel reduction went (when there are replicas).
inline void print_data_parallel(const parallel::RankContext& ctx, const parallel::DataParallel& dp) {
  if (ctx.comm.rank() != 0 || dp.replicas() == 1 || dp.steps() == 0) return;
  std::printf("data parallel: %zu gradient buckets, %d reduced during the last backward; waited %.3f ms a step on "
              "average after backward (rank 0)\n",
              dp.buckets().size(), dp.launched_during_backward(), 1e3 * dp.total_exposed_seconds() / dp.steps());
}

// Collective, when this rank computes on a GPU (every rank of a run does, or none): the caching
// allocator's peak of blocks in use on its device over the run, and what it holds cached now.
// Ranks that share a GPU share its counters.
inline void print_device_memory(const parallel::RankContext& ctx) {
#ifdef MINIPIPE_CUDA
  if (!ctx.device.is_cuda()) return;
  const cuda::AllocatorStats s = cuda::allocator_stats(ctx.device.index);
  print_per_rank(ctx, "GPU memory in the caching allocator's blocks (per device), peak over the run", s.peak_in_use);
  print_per_rank(ctx, "GPU memory cached for reuse at the end (per device)", s.cached);
#else
  (void)ctx;
#endif
}

// Collective: the peak of activations stashed for backward over the run, per rank (measured on each
// rank's memory account: parallel/executor.h), the optimizer state each rank holds, and, when the
// ranks compute on GPUs, the caching allocator's peak and cache on each rank's device
// (print_device_memory).
inline void print_memory(const parallel::RankContext& ctx, const parallel::Pipe& pipe, const optim::Optimizer& opt,
                         bool zero1) {
  print_per_rank(ctx,
                 std::string("activations stashed for backward (checkpoint ") +
                     parallel::checkpoint_name(pipe.options().checkpoint) + "), peak over the run",
                 pipe.peak_stash_bytes());
  if (pipe.asynchronous()) {
    Tensor n = zeros({ctx.comm.size()}, DType::Int64);
    n.data_ptr<int64_t>()[ctx.comm.rank()] = pipe.peak_weight_versions();
    ctx.comm.all_reduce(n);
    if (ctx.comm.rank() == 0) {
      std::printf("weight versions held at once, peak over the run:");
      for (int r = 0; r < ctx.comm.size(); ++r) std::printf("%s %lld on rank %d", r ? "," : "",
                                                            static_cast<long long>(n.data_ptr<int64_t>()[r]), r);
      std::printf(" (%lld optimizer steps per stage)\n", static_cast<long long>(pipe.updates()));
    }
    print_per_rank(ctx, "weight versions, their bytes (the live weights included), peak", pipe.peak_weight_version_bytes());
  }
  print_per_rank(ctx, std::string("optimizer state") + (zero1 ? " (ZeRO-1: sharded over the replicas)" : ""),
                 opt.state_bytes());
  print_device_memory(ctx);
}

}  // namespace minipipe::examples
