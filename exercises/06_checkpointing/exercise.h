// Exercise 6, activation checkpointing: a stage's forward that keeps only its input, and a
// backward that recomputes the forward — with the same dropout masks — before backpropagating
// (exercises/06_checkpointing/README.md). Graded by equivalence with the plain forward/backward
// and by the stash bytes measured on a memory account, next to the executor's own figures.
#pragma once

#include <cstdint>

#include "nn/sequential.h"

namespace exercises {

using minipipe::Tensor;

// What one micro-batch keeps from its forward to its backward through a checkpointed stage. Use
// what you need; the grader measures the bytes it holds.
struct Stash {
  Tensor input;               // the stage's input
  uint64_t step = 0;          // the stage's random context (stage.random_context()) at the forward
  int64_t sample_offset = 0;
};

// The forward of one micro-batch x through `stage` for a checkpointed stage: returns the output
// without an autograd graph (nothing of the forward is kept) and fills `stash`. The caller has set
// the stage's random context (step, sample_offset) for this micro-batch, as the executor does.
Tensor checkpointed_forward(minipipe::nn::Sequential& stage, const Tensor& x, Stash& stash);

// The backward of that micro-batch, later — other micro-batches' forwards may have run since and
// moved the random context: recompute the forward from `stash` with a graph and the forward's
// dropout masks, backpropagate grad_output (dL/d output) through it, so the parameters' .grad()
// accumulate, and return dL/dx (x's shape). Afterwards `stash` holds nothing (input undefined).
Tensor checkpointed_backward(minipipe::nn::Sequential& stage, Stash& stash, const Tensor& grad_output);

}  // namespace exercises
