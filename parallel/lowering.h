// Lowering: turns a compute-only Program (what the generators return) into one with explicit
// SEND/RECV actions that cannot deadlock when every send blocks until its receive is posted.
#pragma once

#include "parallel/schedule.h"

namespace minipipe::parallel {

// The rule (proof in lowering.cpp and docs/schedules.md): run the compute-only program once in
// unit steps, as soon as possible; every message is then placed at the moment its data is
// produced — a SEND right after the producing compute, its RECV on the consumer's rank after
// everything that rank started earlier — and all ranks order simultaneous messages the same way
// (by producer rank, then op, chunk, micro-batch). Each rank's list is then a projection of one
// global sequence, which is a complete blocking execution. Messages between chunks on the same
// rank are not needed and not added. Throws minipipe::Error if `compute_only` is invalid or
// already has communication.
Program lower(const Program& compute_only);

}  // namespace minipipe::parallel
