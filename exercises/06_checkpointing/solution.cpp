// Exercise 6, activation checkpointing: the reference solution (parallel/executor.cpp's
// forward_action and backward_action for a checkpointed chunk, written out for one stage).
#include "exercise.h"

#include "autograd/functions.h"

namespace exercises {

using namespace minipipe;

Tensor checkpointed_forward(nn::Sequential& stage, const Tensor& x, Stash& stash) {
  // Where this micro-batch's masks come from: counter-based dropout keys every mask by (seed,
  // site, step, row), so remembering step and row offset is enough to draw them again.
  if (const auto& rc = stage.random_context()) {
    stash.step = rc->step;
    stash.sample_offset = rc->sample_offset;
  }
  stash.input = x;  // a handle on the caller's tensor: no copy, no bytes of our own
  NoGradGuard no_grad;  // no graph: none of the forward's intermediate tensors are kept
  return stage.forward(x);
}

Tensor checkpointed_backward(nn::Sequential& stage, Stash& stash, const Tensor& grad_output) {
  const auto& rc = stage.random_context();
  uint64_t step_now = 0;
  int64_t offset_now = 0;
  if (rc) {  // put the forward's context back for the recomputation, and restore it afterwards
    step_now = rc->step;
    offset_now = rc->sample_offset;
    rc->step = stash.step;
    rc->sample_offset = stash.sample_offset;
  }
  Tensor x = stash.input.detach();  // a fresh leaf, so the input's gradient lands in x.grad()
  x.set_requires_grad(true);
  Tensor y = stage.forward(x);  // the recomputation, with a graph this time
  if (rc) {
    rc->step = step_now;
    rc->sample_offset = offset_now;
  }
  y.backward(grad_output);
  stash = Stash{};  // the input is released
  return x.grad();
}

}  // namespace exercises
