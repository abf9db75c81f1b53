// What train_mlp and train_gpt share: the pipeline flags (--stages, --microbatches, --schedule,
// --virtual, --checkpoint, --comm, --partition, --threads, --comm-timeout), the launch and Pipe
// options they make, the fingerprint every rank checks, and the lines printed at start.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "parallel/launch.h"
#include "parallel/pipe.h"

namespace minipipe::examples {

struct PipelineFlags {
  int stages = 1;
  int microbatches = 1;
  std::string schedule = "1f1b";
  int virtual_chunks = 1;
  std::string checkpoint = "never";
  std::string comm = "local";
  std::string partition = "uniform";
  int threads = 0;
  double comm_timeout = 300;

  void add_to(CLI::App& app) {
    app.add_option("--stages", stages, "pipeline stages P (ranks)")->capture_default_str();
    app.add_option("--microbatches", microbatches, "micro-batches M per batch")->capture_default_str();
    app.add_option("--schedule", schedule, "pipeline schedule: gpipe, 1f1b or interleaved")->capture_default_str();
    app.add_option("--virtual", virtual_chunks, "chunks per rank (interleaved)")->capture_default_str();
    app.add_option("--checkpoint", checkpoint, "activation checkpointing: never, except_last or always")
        ->capture_default_str();
    app.add_option("--comm", comm, "communicator: local (ranks are threads) or mpi (run under mpirun -np P)")
        ->capture_default_str();
    app.add_option("--partition", partition, "how to cut the model: uniform, params or time (profiled)")
        ->capture_default_str();
    app.add_option("--threads", threads, "intra-op threads per rank (0: cores / ranks on this machine)")
        ->capture_default_str();
    app.add_option("--comm-timeout", comm_timeout, "seconds a rank waits for one message before failing")
        ->capture_default_str();
  }

  parallel::LaunchOptions launch() const {
    parallel::LaunchOptions o;
    o.backend = parallel::parse_backend(comm);
    o.ranks = stages;
    o.threads_per_rank = threads;
    o.timeout_s = comm_timeout;
    return o;
  }

  parallel::PipeOptions pipe(uint64_t seed, parallel::LossFn loss, Tensor profile_sample,
                             std::string fingerprint) const {
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
    o.fingerprint = std::move(fingerprint);
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

// Rank 0 says how the job runs: the thread budget and the pipeline (partition and schedule).
inline void print_start(const parallel::RankContext& ctx, const parallel::Pipe& pipe) {
  if (ctx.comm.rank() != 0) return;
  std::printf("%s communicator, %s\n%s", ctx.comm.backend(), ctx.budget().c_str(), pipe.describe().c_str());
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

// Collective: the peak of activations stashed for backward over the run, per rank (measured on each
// rank's memory account: parallel/executor.h), printed by rank 0.
inline void print_stash(const parallel::RankContext& ctx, const parallel::Pipe& pipe) {
  Tensor peaks = zeros({ctx.comm.size()}, DType::Int64);
  peaks.data_ptr<int64_t>()[ctx.comm.rank()] = pipe.peak_stash_bytes();
  ctx.comm.all_reduce(peaks);
  if (ctx.comm.rank() != 0) return;
  std::printf("activations stashed for backward (checkpoint %s), peak over the run:",
              parallel::checkpoint_name(pipe.options().checkpoint));
  for (int r = 0; r < ctx.comm.size(); ++r)
    std::printf("%s %s on rank %d", r ? "," : "", format_bytes(static_cast<double>(peaks.data_ptr<int64_t>()[r])).c_str(), r);
  std::printf("\n");
}

}  // namespace minipipe::examples
