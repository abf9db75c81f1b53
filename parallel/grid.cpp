// make_grid: two splits of the world — by replica (a pipeline) and by stage (its data-parallel
// group) — and the placement table.
#include "parallel/grid.h"

#include <sstream>

namespace minipipe::parallel {

Grid make_grid(Communicator& world, int pp, int dp) {
  MP_CHECK(pp >= 1 && dp >= 1, "grid: --stages and --dp must be >= 1, got ", pp, " and ", dp);
  MP_CHECK(world.size() == pp * dp, "grid: ", world.size(), " ranks cannot form ", pp, " stages x ", dp,
           " replicas (needs ", pp * dp, std::string(world.backend()) == "mpi" ? ": mpirun -np " + std::to_string(pp * dp) : "",
           ")");
  Grid g;
  g.pp = pp;
  g.dp = dp;
  g.stage = world.rank() % pp;
  g.replica = world.rank() / pp;
  g.pipeline = world.split(g.replica, g.stage);
  g.data = world.split(g.stage, g.replica);
  MP_INTERNAL_ASSERT(g.pipeline->rank() == g.stage && g.data->rank() == g.replica, "grid: split ranked rank ",
                     world.rank(), " as stage ", g.pipeline->rank(), ", replica ", g.data->rank());
  return g;
}

std::string Grid::placement() const {
  std::ostringstream os;
  os << "rank grid: " << pp << (pp == 1 ? " stage" : " stages") << " x " << dp << (dp == 1 ? " replica" : " replicas")
     << " (world rank = replica * " << pp << " + stage)\n";
  for (int d = 0; d < dp; ++d) {
    os << "  replica " << d << ": ranks";
    for (int s = 0; s < pp; ++s) os << " " << d * pp + s;
    os << (pp > 1 ? " (stages 0.." + std::to_string(pp - 1) + ")" : "") << "\n";
  }
  return os.str();
}

}  // namespace minipipe::parallel
