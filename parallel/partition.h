// The partitioner's pure part: cut L layers into P contiguous stages (or P·v chunks for
// interleaving) from per-layer numbers, and report why. The nn integration profiles an
// nn::Sequential into LayerCosts and calls these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minipipe::parallel {

// What the partitioner knows about each layer, for one micro-batch.
struct LayerCosts {
  std::vector<double> cost;           // time of layer i's forward + backward (any unit)
  std::vector<int64_t> params;        // parameters of layer i (empty: all 0)
  std::vector<int64_t> output_bytes;  // bytes of layer i's output activation (empty: all 0)
  int num_layers() const { return static_cast<int>(cost.size()); }
};

// Stage s holds layers [bounds[s], bounds[s+1]): bounds[0] = 0, bounds[P] = L, and every stage
// holds at least one layer.
struct Partition {
  std::vector<int> bounds;

  // Checks the bounds (throws minipipe::Error) and builds the partition.
  static Partition from_bounds(std::vector<int> bounds);
  int num_stages() const { return static_cast<int>(bounds.size()) - 1; }
  int num_layers() const { return bounds.back(); }
  int begin(int stage) const { return bounds[static_cast<size_t>(stage)]; }
  int end(int stage) const { return bounds[static_cast<size_t>(stage) + 1]; }
  int stage_of(int layer) const;
};

// Equal layer counts: stage s gets layers [floor(s·L/P), floor((s+1)·L/P)).
Partition uniform(int num_layers, int num_stages);
// The contiguous partition minimising the largest per-stage parameter count (exact).
Partition by_params(const std::vector<int64_t>& params, int num_stages);
// The contiguous partition minimising the slowest stage, max_s Σ_{i in s} cost[i] (exact:
// dynamic programming over prefix sums, O(P·L²)). Among optimal partitions, the one whose
// earlier stages hold the fewest layers.
Partition by_cost(const std::vector<double>& cost, int num_stages);
// All three throw minipipe::Error when P < 1, P > L, or a cost is negative or not finite.

struct StageReport {
  int first_layer = 0, last_layer = 0;  // inclusive
  int64_t params = 0;
  double cost = 0.0;
  int64_t cut_bytes = 0;  // the activation sent to the next stage per micro-batch (0: last stage)
};

struct PartitionReport {
  std::vector<StageReport> stages;
  int bottleneck = 0;  // the slowest stage: in steady state the pipeline runs at its pace
  double total_cost = 0.0;
  double balance = 0.0;       // mean stage cost / slowest stage cost; 1 = perfectly balanced
  std::string table() const;  // one row per stage, the bottleneck marked
};

// Per-stage sums of `layers` under `partition`; L must match.
PartitionReport report(const Partition& partition, const LayerCosts& layers);

}  // namespace minipipe::parallel
