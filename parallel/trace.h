// Traces of real pipeline steps: every rank's executed actions (executor.h's ActionRecord) gathered
// on rank 0 on one time base, the bubble measured from them, the simulator's prediction fed with
// the same run's per-action costs, and the Chrome trace-event export (Perfetto, chrome://tracing).
// gantt_svg.h draws the same traces (and simulated timelines) as SVG Gantt charts.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/executor.h"
#include "parallel/simulator.h"

namespace minipipe::parallel {

// One traced step of every rank. Times are seconds since the earliest rank began the step, on a
// common clock: rank r's steady clock plus clock_offset[r] (0 for every rank of `local`, whose
// ranks are threads of one process sharing one clock).
struct Trace {
  Program program;                                // the lowered program the ranks ran
  std::vector<std::vector<ActionRecord>> ranks;   // per rank, in program order
  std::vector<double> clock_offset;               // seconds added to each rank's clock
  std::string label;                              // e.g. "1f1b P=2 M=4 v=1 checkpoint never, step 3"
};

// The trace read as the simulator reads a schedule: the timeline, the step time (earliest start to
// latest end over all ranks) and per rank busy (F, B, W), comm (inside SEND / RECV), idle = step
// time - busy, the bubble in both conventions (idle / step time, idle / busy) and the peak of
// stashed activations (micro-batches whose F ran and B has not, and bytes as measured).
Simulation measured(const Trace& t);

// Per-action costs measured in the trace, as the simulator takes them: per chunk the mean F and B
// time and the bytes F stashed and SEND_F sent; the link's latency is the median over messages of
// the shorter half of each send/receive pair (the half that did not wait for its peer) — with
// async_sends, from a send to the end of its receive, over the receives posted before the send.
Costs measured_costs(const Trace& t);

// The simulator's prediction of the traced step: the same lowered program with measured_costs().
Simulation predicted(const Trace& t);

// The closed-form bubble of total time, (P-1)/(v·M+P-1), for a program whose chunks sit round
// robin (chunk c on rank c mod P) and where it holds (v = 1, or P divides M); -1 otherwise.
double closed_form_bubble(const Program& p);

// Measured bubble per rank next to the closed form and the prediction, as printed by the trainers
// and written beside the trace files.
std::string bubble_table(const Trace& t);

// Chrome trace-event JSON: one process per rank (pid = rank) with a track of its actions (complete
// "X" events, microseconds), flow arrows from each SEND to its RECV, and a counter track of the
// rank's stashed activation bytes.
std::string chrome_trace_json(const Trace& t);

// Per rank, seconds to add to its steady clock to read rank 0's, by ping-pong with rank 0 (Cristian's
// method: of `rounds` round trips the shortest is kept; error at most half of it). Collective.
// `round_trips`, if given, gets each rank's shortest round trip in seconds (0 for rank 0): the
// error bound of its offset is half of it.
std::vector<double> measure_clock_offsets(Communicator& comm, int rounds = 16,
                                          std::vector<double>* round_trips = nullptr);

// Collects traces of chosen steps. Construct it on every rank before training (collective: it aligns
// the clocks then — measure_clock_offsets under `mpi`, zeros under `local`); after a step call
// gather() on every rank: rank 0 gets the whole trace, the others an empty one (no ranks).
class Tracer {
 public:
  explicit Tracer(Communicator& comm);
  Trace gather(const Executor& exec, const std::string& label);  // collective
  const std::vector<double>& clock_offsets() const { return offsets_; }

 private:
  Communicator& comm_;
  std::vector<double> offsets_;
};

// Writes DIR/trace.json (Chrome), DIR/measured.svg, DIR/predicted.svg (the simulator with the
// run's costs, same scale) and DIR/bubble.txt (bubble_table), each atomically; creates DIR.
void write_trace_files(const Trace& t, const std::string& dir);

}  // namespace minipipe::parallel
