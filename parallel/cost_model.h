// What activation checkpointing does to a schedule's simulated costs, so show_schedule, the
// explorer and the benchmark's replay model it the same way the executor runs it (executor.h).
#pragma once

#include "parallel/executor.h"
#include "parallel/simulator.h"

namespace minipipe::parallel {

// A checkpointed chunk keeps only its input from F to B and runs its forward again inside B: its B
// costs B + F, and it stashes the bytes of its input — chunk c-1's message (message_bytes, or
// activation_bytes when those are empty), nothing for chunk 0, whose input is the caller's batch.
// Which chunks are checkpointed follows Executor::checkpointed: all (always), all but the last
// (except_last), none (never).
Costs with_checkpointing(Costs costs, Checkpoint mode, int chunks);

}  // namespace minipipe::parallel
