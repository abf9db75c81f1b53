// Exercise 4, deadlocks: placing the sends and receives of a pipeline schedule. First the naive
// placement (and why it hangs under blocking send/receive), then a lowering that cannot hang
// (exercises/04_deadlocks/README.md). Graded by the validator's deadlock run, then by running the
// lowered program over the local communicator, with a timeout.
#pragma once

#include "parallel/schedule.h"

namespace exercises {

using minipipe::parallel::Action;
using minipipe::parallel::Op;
using minipipe::parallel::Program;

// Both take a compute-only Program (a generator's: F, B and maybe W actions, no messages) and
// return a copy with SEND_F / RECV_F / SEND_B / RECV_B actions added to the ranks' lists; the
// compute actions stay in their order. A message is needed wherever the data crosses ranks:
// chunk c's output goes to chunk c+1 for micro-batch m when p.rank_of(c, m) != p.rank_of(c + 1, m)
// (SEND_F on chunk c, RECV_F on chunk c+1), and the gradient comes back the same way (SEND_B on
// chunk c+1, RECV_B on chunk c); never past either end, never in a forward_only program.

// "Receive just before the compute that needs it, send right after the compute that produced it."
Program naive_lowering(const Program& compute_only);

// The same messages, placed so that the program runs to the end even when every send blocks
// until its receive is posted (rendezvous), for every valid compute-only program.
Program deadlock_free_lowering(const Program& compute_only);

}  // namespace exercises
