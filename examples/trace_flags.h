// The trainers' --trace DIR and --trace-step N: one chosen training step of every rank traced
// (parallel/trace.h) and written to DIR as Chrome trace JSON, measured and predicted SVG Gantt charts
// and the bubble table, which rank 0 also prints.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "parallel/pipe.h"
#include "parallel/trace.h"

namespace minipipe::examples {

struct TraceFlags {
  std::string dir;
  int64_t step = 5;

  void add_to(CLI::App& app) {
    app.add_option("--trace", dir, "write a trace of one training step to this directory (trace.json, "
                                   "measured.svg, predicted.svg, bubble.txt)");
    app.add_option("--trace-step", step, "which optimizer step --trace records (1 = the first)")
        ->capture_default_str();
  }
  // Every rank calls this once the run's step count is known, so a step the run never reaches is an
  // error before training rather than a trace that is silently never written.
  void check_within(int64_t total_steps) const {
    MP_CHECK(dir.empty() || step <= total_steps, "--trace-step ", step, " is past the run's last step ", total_steps,
             "; choose a step in 1..", total_steps);
  }
};

// One per rank. Constructing it aligns the ranks' clocks (collective) when tracing is on.
class StepTracer {
 public:
  StepTracer(const TraceFlags& flags, parallel::Communicator& comm) : flags_(flags) {
    MP_CHECK(flags_.dir.empty() || flags_.step >= 1, "--trace-step must be >= 1, got ", flags_.step);
    if (!flags_.dir.empty()) tracer_ = std::make_unique<parallel::Tracer>(comm);
  }
  // Collective at the chosen step: call on every rank right after each train_step; `step` counts
  // optimizer steps from 1.
  void after_step(const parallel::Pipe& pipe, int64_t step, const char* comm_name) {
    if (!tracer_ || step != flags_.step) return;
    const parallel::PipeOptions& o = pipe.options();
    const std::string label = o.schedule + " P=" + std::to_string(o.stages) + " M=" + std::to_string(o.microbatches) +
                              " v=" + std::to_string(o.virtual_chunks) + " checkpoint " +
                              parallel::checkpoint_name(o.checkpoint) + " (" + comm_name + "), step " +
                              std::to_string(step);
    const parallel::Trace t = tracer_->gather(pipe.executor(), label);
    if (pipe.rank() != 0) return;
    parallel::write_trace_files(t, flags_.dir);
    std::printf("%swrote %s/trace.json (open it in Perfetto or chrome://tracing), measured.svg, predicted.svg, "
                "bubble.txt\n",
                parallel::bubble_table(t).c_str(), flags_.dir.c_str());
    std::fflush(stdout);
  }

 private:
  const TraceFlags& flags_;
  std::unique_ptr<parallel::Tracer> tracer_;
};

}  // namespace minipipe::examples
