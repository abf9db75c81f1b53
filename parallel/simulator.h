// The timed simulator: runs a Program against per-chunk costs and a link model and returns the
// timeline, the step time, the bubble per rank (both conventions) and peak in-flight activations.
// The same numbers feed show_schedule, the docs' charts and the benchmarks' "predicted" column.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "parallel/schedule.h"

namespace minipipe::parallel {

// Per-chunk costs in any time unit, and the link between two ranks.
struct Costs {
  // Time of chunk c's F, B and W for one micro-batch. In a program without W, B is the full
  // backward and costs backward[c] + weight[c]; with W, B is the input gradient (backward[c])
  // and W the weight gradient (weight[c]).
  std::vector<double> forward, backward, weight;
  // One hop: a message of n bytes takes latency + n / bandwidth (bandwidth in bytes per unit).
  double latency = 0.0;
  double bandwidth = std::numeric_limits<double>::infinity();
  // Per chunk and micro-batch: what F stashes for B (held from F until B), and the size of the
  // chunk's output (sent to chunk c+1; the gradient coming back has the same size). Empty
  // activation_bytes = 0; empty message_bytes = activation_bytes.
  std::vector<double> activation_bytes, message_bytes;

  // Every chunk costs the same.
  static Costs uniform(int chunks, double f, double b, double w = 0.0);
  // The time of the message from chunk c to chunk c+1 (or its gradient back).
  double message_time(int chunk) const;
};

// Throws minipipe::Error unless every per-chunk vector has `chunks` entries (or may be empty) and
// every value is finite and >= 0 (bandwidth > 0).
void check_costs(const Costs& c, int chunks);

struct TimedAction {
  Action action;
  double start = 0.0, end = 0.0;
};

struct RankStats {
  double busy = 0.0;  // compute: F, B, W
  double comm = 0.0;  // inside transfers (latency + bytes / bandwidth) of lowered programs
  double idle = 0.0;  // makespan - busy: waiting and communicating, i.e. the bubble
  double bubble_of_total = 0.0;    // idle / makespan
  double bubble_over_ideal = 0.0;  // idle / busy (Megatron's convention)
  // The most (chunk, micro-batch) pairs at once whose F ran and whose B has not (with one chunk
  // per rank: micro-batches), and the most stashed activation bytes. W does not hold a stash
  // here; a forward-only program stashes nothing.
  int peak_inflight = 0;
  double peak_inflight_bytes = 0.0;
};

struct Simulation {
  double makespan = 0.0;  // the step time: when the last action of any rank ends
  std::vector<std::vector<TimedAction>> timeline;  // per rank, in program order
  std::vector<RankStats> ranks;
};

// Validates the program (throws minipipe::Error with the grid if invalid), then runs every
// action as early as its rank and its inputs allow. Lowered programs: a send and its receive
// start together when both ranks reach them and keep both busy for the message time (blocking);
// with Program::async_sends a send takes no time and its receive ends when the rank reaches it or
// the data arrives (sent + message time), whichever is later.
// Compute-only programs: messages are implicit and asynchronous — the data arrives message_time
// after it is produced, without occupying either rank.
Simulation simulate(const Program& program, const Costs& costs);

// Text Gantt chart, ranks × time slots of width `slot` (0: the shortest compute action). A cell
// shows the action that covers the middle of the slot: `F3` / `B3` / `W3` where it starts
// (`4F3` with the chunk when a rank holds several chunks), `--` while it runs on, `>>` / `<<`
// while sending / receiving, `.` when idle.
std::string gantt(const Program& program, const Simulation& sim, double slot = 0.0);

}  // namespace minipipe::parallel
