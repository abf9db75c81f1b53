// The validator: checks that a Program (compute-only or lowered) is a correct pipeline schedule
// and, when it is not, says which rule broke and shows the step × rank grid with the offending
// actions marked `[1B3]!`. Used by lowering, the simulator, the executor and show_schedule.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "parallel/schedule.h"

namespace minipipe::parallel {

// The rules, in the order they are checked. The deadlock run happens only when every static
// rule holds (a missing action would otherwise show up twice, once as a deadlock).
enum class Rule {
  // Well-formed: the chunk and micro-batch exist, the chunk lives on the rank running it.
  Placement,
  // Exactly one F and one B (and one W if W is used) per (chunk, micro-batch); no B or W in a
  // forward-only program; no action twice.
  Count,
  // On a chunk: F of m before B of m, B of m before W of m.
  ForwardBeforeBackward,
  // F(c,m) after F(c-1,m) (or after receiving it), B(c,m) after B(c+1,m) (or after receiving
  // it), and a send after the compute whose result it sends.
  Dependency,
  // Every send has its receive on the right peer and vice versa; no message where none is
  // needed (same rank, past either end, backward messages in inference).
  Matching,
  // Running it gets stuck: with blocking (rendezvous) send/recv, or — Program::async_sends — with
  // sends that do not wait and receives that wait for their send.
  Deadlock,
};
const char* rule_name(Rule rule);

struct Violation {
  Rule rule;
  int rank = -1;   // where the offending action is (-1: the program as a whole)
  int index = -1;  // its position in that rank's list (-1: a missing action)
  std::string message;
};

struct ValidationReport {
  bool lowered = false;  // the program has SEND/RECV actions (else messages are implicit)
  std::vector<Violation> violations;
  std::string grid;  // step × rank grid with the offending actions marked; empty when ok

  bool ok() const { return violations.empty(); }
  bool has(Rule rule) const;
  std::string to_string() const;  // the rules broken, then the grid
};

// Checks every rule; never throws for a bad program.
ValidationReport check(const Program& program);
// Throws minipipe::Error with check(program).to_string() when any rule breaks.
void validate(const Program& program);

// Runs the program step by step — in each step every rank runs its next action if it can; a
// send and its receive run in the same step, together (blocking rendezvous; with async_sends a
// send runs alone and its receive in a later step) — and draws the
// step × rank grid. Actions that never ran are listed below a "stuck" line. `marks` are
// (rank, index) pairs drawn as `[1B3]!`.
std::string step_grid(const Program& program, const std::vector<std::pair<int, int>>& marks = {});

}  // namespace minipipe::parallel
