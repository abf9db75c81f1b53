// Contiguous partitioning of L layers into P stages: uniform, and the exact min-max partition
// (by parameters or by measured cost), plus the per-stage report that says why.
#include "parallel/partition.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "tensor/error.h"

namespace minipipe::parallel {

namespace {

void check_sizes(int L, int P) {
  MP_CHECK(P >= 1, "partition: need at least 1 stage, got ", P);
  MP_CHECK(L >= 1, "partition: need at least 1 layer, got ", L);
  MP_CHECK(P <= L, "partition: cannot cut ", L, " layers into ", P,
           " stages: every stage needs at least one layer (need P <= L)");
}

// best[k][j]: the smallest possible slowest stage when layers [0, j) form k stages,
//   best[1][j] = S(0, j),  best[k][j] = min_{k-1 <= i < j} max(best[k-1][i], S(i, j)),
// with S(i, j) = prefix[j] - prefix[i]. The cut i is remembered to rebuild the bounds.
Partition min_max_partition(const std::vector<double>& w, int P, const char* what) {
  const int L = static_cast<int>(w.size());
  check_sizes(L, P);
  for (double x : w)
    MP_CHECK(x >= 0.0 && std::isfinite(x), "partition: ", what, " ", x,
             " is not a finite number >= 0");
  std::vector<double> prefix(static_cast<size_t>(L) + 1, 0.0);
  for (size_t i = 0; i < w.size(); ++i) prefix[i + 1] = prefix[i] + w[i];
  auto S = [&](int i, int j) {
    return prefix[static_cast<size_t>(j)] - prefix[static_cast<size_t>(i)];
  };
  const double inf = std::numeric_limits<double>::infinity();
  const size_t stride = static_cast<size_t>(L) + 1;
  std::vector<double> best(static_cast<size_t>(P + 1) * stride, inf);
  std::vector<int> cut(best.size(), -1);
  auto at = [&](int k, int j) { return static_cast<size_t>(k) * stride + static_cast<size_t>(j); };
  for (int j = 1; j <= L; ++j) best[at(1, j)] = S(0, j);
  for (int k = 2; k <= P; ++k)
    for (int j = k; j <= L - (P - k); ++j)
      for (int i = k - 1; i < j; ++i) {
        const double v = std::max(best[at(k - 1, i)], S(i, j));
        if (v < best[at(k, j)]) best[at(k, j)] = v, cut[at(k, j)] = i;
      }
  std::vector<int> bounds(static_cast<size_t>(P) + 1, 0);
  bounds[static_cast<size_t>(P)] = L;
  for (int k = P; k >= 2; --k)
    bounds[static_cast<size_t>(k) - 1] = cut[at(k, bounds[static_cast<size_t>(k)])];
  return Partition::from_bounds(bounds);
}

}  // namespace

Partition Partition::from_bounds(std::vector<int> bounds) {
  MP_CHECK(bounds.size() >= 2, "partition: bounds need at least 2 entries (0 and L)");
  MP_CHECK(bounds.front() == 0, "partition: the first stage must start at layer 0, got ",
           bounds.front());
  for (size_t s = 0; s + 1 < bounds.size(); ++s)
    MP_CHECK(bounds[s] < bounds[s + 1], "partition: stage ", s, " is empty (bounds ", bounds[s],
             " and ", bounds[s + 1], "); every stage needs at least one layer");
  Partition p;
  p.bounds = std::move(bounds);
  return p;
}

int Partition::stage_of(int layer) const {
  MP_CHECK(layer >= 0 && layer < num_layers(), "partition: layer ", layer, " out of range [0, ",
           num_layers(), ")");
  auto after = std::upper_bound(bounds.begin(), bounds.end(), layer);
  return static_cast<int>(after - bounds.begin()) - 1;
}

Partition uniform(int num_layers, int num_stages) {
  check_sizes(num_layers, num_stages);
  std::vector<int> bounds;
  for (int s = 0; s <= num_stages; ++s)
    bounds.push_back(static_cast<int>(static_cast<int64_t>(s) * num_layers / num_stages));
  return Partition::from_bounds(bounds);
}

Partition by_params(const std::vector<int64_t>& params, int num_stages) {
  return min_max_partition(std::vector<double>(params.begin(), params.end()), num_stages,
                           "parameter count");
}

Partition by_cost(const std::vector<double>& cost, int num_stages) {
  return min_max_partition(cost, num_stages, "layer cost");
}

PartitionReport report(const Partition& partition, const LayerCosts& layers) {
  const int L = layers.num_layers();
  MP_CHECK(partition.num_layers() == L, "partition report: the partition covers ",
           partition.num_layers(), " layers, the costs describe ", L);
  MP_CHECK(layers.params.empty() || static_cast<int>(layers.params.size()) == L,
           "partition report: ", layers.params.size(), " parameter counts for ", L, " layers");
  MP_CHECK(layers.output_bytes.empty() || static_cast<int>(layers.output_bytes.size()) == L,
           "partition report: ", layers.output_bytes.size(), " output sizes for ", L, " layers");
  PartitionReport rep;
  for (int s = 0; s < partition.num_stages(); ++s) {
    StageReport st;
    st.first_layer = partition.begin(s);
    st.last_layer = partition.end(s) - 1;
    for (int i = st.first_layer; i <= st.last_layer; ++i) {
      st.cost += layers.cost[static_cast<size_t>(i)];
      if (!layers.params.empty()) st.params += layers.params[static_cast<size_t>(i)];
    }
    if (s + 1 < partition.num_stages() && !layers.output_bytes.empty())
      st.cut_bytes = layers.output_bytes[static_cast<size_t>(st.last_layer)];
    rep.total_cost += st.cost;
    if (rep.stages.empty() || st.cost > rep.stages[static_cast<size_t>(rep.bottleneck)].cost)
      rep.bottleneck = s;
    rep.stages.push_back(st);
  }
  const double slowest = rep.stages[static_cast<size_t>(rep.bottleneck)].cost;
  rep.balance = slowest > 0.0 ? rep.total_cost / partition.num_stages() / slowest : 1.0;
  return rep;
}

std::string PartitionReport::table() const {
  std::ostringstream os;
  os << "stage  layers          params          cost   share   cut bytes\n";
  for (size_t s = 0; s < stages.size(); ++s) {
    const StageReport& st = stages[s];
    std::string layers = std::to_string(st.first_layer) + ".." + std::to_string(st.last_layer);
    std::string name = std::to_string(s) + (static_cast<int>(s) == bottleneck ? " *" : "");
    const double share = total_cost > 0.0 ? 100.0 * st.cost / total_cost : 0.0;
    os << std::left << std::setw(7) << name << std::setw(10) << layers << std::right
       << std::setw(12) << st.params << std::setw(14) << std::setprecision(6) << st.cost
       << std::setw(7) << std::fixed << std::setprecision(1) << share << "%" << std::defaultfloat
       << std::setw(12);
    if (s + 1 < stages.size())
      os << st.cut_bytes;
    else
      os << "(loss)";
    os << '\n';
  }
  const StageReport& b = stages[static_cast<size_t>(bottleneck)];
  os << std::setprecision(6) << "predicted bottleneck: stage " << bottleneck << " (cost " << b.cost
     << " per micro-batch; steady state runs at its pace), balance " << std::fixed
     << std::setprecision(1) << 100.0 * balance << "% (mean / slowest)\n";
  return os.str();
}

}  // namespace minipipe::parallel
