// Internal to the validator: runs a Program step by step under blocking rendezvous semantics
// (the deadlock rule) and draws the step × rank grid. Not part of the public API.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "parallel/schedule.h"
#include "parallel/validator.h"

namespace minipipe::parallel {

struct StepRun {
  std::vector<std::vector<int>> step;  // per rank, per action: the step it ran in, -1 if never
  std::vector<int> pc;                 // per rank: the first action that did not run
  int steps = 0;
  bool finished = false;
};

// In each step, every rank runs its next action if it can: a compute action when its inputs
// exist (produced in an earlier step, locally or — in a compute-only program — on any rank), a
// send together with its receive when both are the next action of their ranks (async_sends: a
// send alone once its data exists, a receive once its send ran in an earlier step). Malformed
// actions never run. Stops when no rank can move.
StepRun run_steps(const Program& p);
// One Deadlock violation per stuck rank, saying what it waits for.
std::vector<Violation> deadlock_violations(const Program& p, const StepRun& run);
std::string draw_grid(const Program& p, const StepRun& run,
                      const std::vector<std::pair<int, int>>& marks);

}  // namespace minipipe::parallel
