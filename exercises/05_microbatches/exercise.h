// Exercise 5, the executor's micro-batch loop: gradient accumulation over M micro-batches with the
// loss scaled by 1/M, on one device (exercises/05_microbatches/README.md). Graded by equivalence
// with the single-device full-batch step, to 1e-12 in float64, dropout on.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/module.h"
#include "parallel/executor.h"

namespace exercises {

using minipipe::Tensor;
using minipipe::parallel::LossFn;  // one micro-batch's mean loss over its rows, a scalar

// t cut along dim 0 into M micro-batches of B/M rows each, in order, as views (no copy).
// B % M != 0 (or M < 1) is a minipipe::Error naming B and M.
std::vector<Tensor> split_microbatches(const Tensor& t, int M);

// One step's gradients, the way parallel/executor.cpp computes them, without the pipeline: for
// each of the M micro-batches of x (inputs) and y (targets), forward through `model`, loss, and a
// backward that accumulates into the parameters' .grad() — so that the summed gradients are those
// of loss(model(x), y) over the whole batch. The caller zeroes the gradients between steps (this
// function must not). Dropout: if the model is bound to a RandomContext (model.random_context()),
// its masks are keyed by (step, row index in the whole batch); set `step` and `sample_offset` so
// each micro-batch draws the masks its rows get in the whole batch.
// Returns the batch's loss: the mean of the M micro-batch losses (each unscaled).
double accumulate_gradients(minipipe::nn::Module& model, const Tensor& x, const Tensor& y, int M, const LossFn& loss,
                            uint64_t step);

}  // namespace exercises
