// Exercise 3, schedule generators: GPipe, then 1F1B, written by the student as pure functions
// from (P ranks, M micro-batches) to a compute-only Program (exercises/03_schedules/README.md).
// Graded by the validator, the simulator and the closed forms of docs/schedules.md.
#pragma once

#include "parallel/schedule.h"

namespace exercises {

using minipipe::parallel::Action;
using minipipe::parallel::Op;
using minipipe::parallel::Program;

// Start from Program::empty(P, P, M) (P ranks, P chunks: chunk r on rank r, M micro-batches) and
// fill p.on(r) with rank r's F and B actions, in the order the rank runs them: Action{r, Op::F, m}.
// P >= 1 and M >= 1, else a minipipe::Error naming the bad value.

// GPipe: every rank runs all M forwards, then all M backwards.
Program gpipe(int P, int M);

// 1F1B: rank r warms up with some forwards, then alternates one forward and one backward, then
// drains the remaining backwards, so that it never holds more micro-batches than it must.
Program one_f_one_b(int P, int M);

}  // namespace exercises
