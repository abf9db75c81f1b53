// The rank grid: world = pp x dp. Replica d's pipeline is world ranks d·pp .. d·pp + pp - 1
// (stage s at d·pp + s), so a pipeline's ranks are neighbours; the dp replicas of a stage s are
// ranks s, pp + s, 2·pp + s, ... Each rank gets two sub-communicators, made with split: its
// pipeline (ranked by stage) and its stage's replicas (ranked by replica).
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace minipipe::parallel {

struct Grid {
  int pp = 1, dp = 1;       // stages per pipeline, replicas of the pipeline
  int stage = 0, replica = 0;  // this rank's place
  std::unique_ptr<Communicator> pipeline;  // the pp ranks of this replica's pipeline; rank = stage
  std::unique_ptr<Communicator> data;      // the dp replicas of this stage; rank = replica
  // World rank -> (stage, replica), one line per pipeline: what trainers print at start.
  std::string placement() const;
};

// Collective over `world`, which must have pp·dp ranks (else an Error on every rank saying so).
Grid make_grid(Communicator& world, int pp, int dp);

}  // namespace minipipe::parallel
