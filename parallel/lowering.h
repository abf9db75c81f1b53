// Lowering: turns a compute-only Program (what the generators return) into one with explicit
// SEND/RECV actions that cannot deadlock when every send blocks until its receive is posted.
#pragma once

#include "parallel/schedule.h"
#include "parallel/simulator.h"

namespace minipipe::parallel {

// The rule (proof in lowering.cpp and docs/schedules.md): simulate the compute-only program
// once (as early as possible, messages asynchronous) and place every message at one moment t of
// that reference run, between the end of its producer and the start of its consumer — the
// first such moment at which neither the sending nor the receiving rank is in the middle of a
// compute, or the producer's end if there is none. The SEND goes into the producer's rank and
// the RECV into the consumer's rank at that moment; simultaneous messages are ordered the same
// way on every rank (producer rank, op, chunk, micro-batch). Each rank's list is then the
// projection of one global sequence of events, which is a complete blocking execution.
// Messages between chunks on the same rank are not needed and not added.
//
// With free messages and such a moment for every message, the lowered program keeps the
// reference timeline exactly. `costs` only steer the placement: any costs give a program that
// cannot deadlock. Throws minipipe::Error if `compute_only` is invalid or has communication.
Program lower(const Program& compute_only, const Costs& costs);
// Lowering for equal costs (F = B = W = 1 on every chunk, free messages).
Program lower(const Program& compute_only);

// Lowering for sends that do not block (Program::async_sends): every SEND right after the compute
// that produced its data, every RECV right before the compute that consumes it. A rank then waits
// only for data it needs next, so the step keeps the compute-only program's timeline with
// asynchronous messages (simulate() of the compute-only program) — no costs needed. It cannot
// deadlock: a rank blocks only in a RECV, whose SEND follows a compute the valid compute-only
// program lets run first. Megatron-LM's non-blocking p2p does the same. Throws like lower().
Program lower_async(const Program& compute_only);

}  // namespace minipipe::parallel
