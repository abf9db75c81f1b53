// Profiling an nn::Sequential for the partitioner: time each layer's forward + backward on the
// real input shape, count its parameters and the bytes of its output (what a cut after it
// sends), then cut with by_cost — the `by_time` partition. partition.h has the pure part.
#pragma once

#include "nn/sequential.h"
#include "parallel/partition.h"

namespace minipipe::parallel {

struct ProfileOptions {
  int warmup = 1;   // untimed runs per layer (first-touch allocations, caches)
  int repeats = 5;  // timed runs per layer; the median is kept (robust to a noisy machine)
};

// Per-layer cost in seconds (median forward + backward), parameters and output bytes, for one
// micro-batch shaped like `sample`. The model's parameters' grads are left as they were.
LayerCosts profile_layers(nn::Sequential& model, const Tensor& sample, const ProfileOptions& opts = {});

// Cut `model` into `num_stages` contiguous stages minimising the slowest stage's measured time.
Partition by_time(nn::Sequential& model, const Tensor& sample, int num_stages, const ProfileOptions& opts = {});

// The stages themselves: stage s is model.slice(p.begin(s), p.end(s)), sharing its layers.
std::vector<std::shared_ptr<nn::Sequential>> split(const nn::Sequential& model, const Partition& p);

}  // namespace minipipe::parallel
