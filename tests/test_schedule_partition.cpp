// Tests of the partitioner's pure part: every layer in exactly one stage, the min-max partition
// against brute force over all contiguous partitions (very unequal layers included), the
// per-stage report and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "parallel/partition.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;

namespace {
double slowest(const mp::Partition& p, const std::vector<double>& cost) {
  double worst = 0.0;
  for (int s = 0; s < p.num_stages(); ++s) {
    double sum = 0.0;
    for (int i = p.begin(s); i < p.end(s); ++i) sum += cost[static_cast<size_t>(i)];
    worst = std::max(worst, sum);
  }
  return worst;
}

// Brute force: the best slowest stage over every way to place P-1 cuts among L-1 gaps.
double brute_force(const std::vector<double>& cost, int P) {
  const int L = static_cast<int>(cost.size());
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> bounds = {0};
  std::function<void(int)> place = [&](int from) {
    if (static_cast<int>(bounds.size()) == P) {
      bounds.push_back(L);
      best = std::min(best, slowest(mp::Partition::from_bounds(bounds), cost));
      bounds.pop_back();
      return;
    }
    for (int cut = from; cut <= L - (P - static_cast<int>(bounds.size())); ++cut) {
      bounds.push_back(cut);
      place(cut + 1);
      bounds.pop_back();
    }
  };
  place(1);
  return best;
}

void expect_covers_every_layer_once(const mp::Partition& p, int L, int P) {
  ASSERT_EQ(p.num_stages(), P);
  ASSERT_EQ(p.num_layers(), L);
  std::vector<int> owner(static_cast<size_t>(L), -1);
  for (int s = 0; s < P; ++s) {
    EXPECT_LT(p.begin(s), p.end(s)) << "stage " << s << " is empty";
    for (int i = p.begin(s); i < p.end(s); ++i) {
      EXPECT_EQ(owner[static_cast<size_t>(i)], -1) << "layer " << i << " in two stages";
      owner[static_cast<size_t>(i)] = s;
      EXPECT_EQ(p.stage_of(i), s);
    }
  }
  for (int i = 0; i < L; ++i) EXPECT_NE(owner[static_cast<size_t>(i)], -1) << "layer " << i;
}
}  // namespace

TEST(Partition, UniformSplitsLayerCountsWithinOne) {
  EXPECT_EQ(mp::uniform(8, 4).bounds, (std::vector<int>{0, 2, 4, 6, 8}));
  EXPECT_EQ(mp::uniform(10, 4).bounds, (std::vector<int>{0, 2, 5, 7, 10}));
  for (int L = 1; L <= 20; ++L)
    for (int P = 1; P <= L; ++P) {
      mp::Partition p = mp::uniform(L, P);
      expect_covers_every_layer_once(p, L, P);
      for (int s = 0; s < P; ++s) EXPECT_LE(p.end(s) - p.begin(s), (L + P - 1) / P);
    }
}

TEST(Partition, EveryLayerInExactlyOneStage) {
  std::mt19937 rng(7);
  for (int L = 1; L <= 12; ++L)
    for (int P = 1; P <= L; ++P) {
      std::vector<double> cost(static_cast<size_t>(L));
      std::vector<int64_t> params(static_cast<size_t>(L));
      for (int i = 0; i < L; ++i) {
        cost[static_cast<size_t>(i)] = static_cast<double>(rng() % 50);
        params[static_cast<size_t>(i)] = static_cast<int64_t>(rng() % 1000);
      }
      expect_covers_every_layer_once(mp::by_cost(cost, P), L, P);
      expect_covers_every_layer_once(mp::by_params(params, P), L, P);
    }
}

// Integer-valued costs keep every sum exact, so the optimum must match exactly.
TEST(Partition, ByCostEqualsBruteForceIncludingVeryUnequalLayers) {
  std::mt19937 rng(2024);
  int cases = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int L = 1 + static_cast<int>(rng() % 10);
    const int P = 1 + static_cast<int>(rng() % static_cast<unsigned>(L));
    std::vector<double> cost(static_cast<size_t>(L));
    for (double& c : cost) {
      switch (trial % 3) {
        case 0:
          c = static_cast<double>(rng() % 10);
          break;  // similar, zeros included
        case 1:
          c = rng() % 4 == 0 ? 1e6 : 1.0;
          break;  // a few giants
        default:
          c = std::ldexp(1.0, static_cast<int>(rng() % 30));  // 1 .. 2^29
      }
    }
    const mp::Partition p = mp::by_cost(cost, P);
    ASSERT_EQ(slowest(p, cost), brute_force(cost, P)) << "L=" << L << " P=" << P;
    ++cases;
  }
  EXPECT_EQ(cases, 300);
  // A hand case: one huge layer gets a stage to itself.
  EXPECT_EQ(mp::by_cost({1, 1, 100, 1, 1}, 3).bounds, (std::vector<int>{0, 2, 3, 5}));
}

TEST(Partition, ByParamsMinimisesTheLargestStage) {
  std::vector<int64_t> params = {10, 10, 10, 10, 1000, 10, 10, 10};
  mp::Partition p = mp::by_params(params, 3);
  std::vector<double> as_double(params.begin(), params.end());
  EXPECT_EQ(slowest(p, as_double), 1000.0);
  EXPECT_EQ(slowest(p, as_double), brute_force(as_double, 3));
  EXPECT_EQ(p.stage_of(4), 1);
  EXPECT_EQ(p.end(1) - p.begin(1), 1);  // the big layer alone
}

TEST(Partition, ReportSaysWhy) {
  mp::LayerCosts layers;
  layers.cost = {1, 2, 3, 4, 10, 1};
  layers.params = {100, 200, 300, 400, 500, 600};
  layers.output_bytes = {11, 22, 33, 44, 55, 66};
  mp::Partition p = mp::Partition::from_bounds({0, 3, 5, 6});
  mp::PartitionReport rep = mp::report(p, layers);
  ASSERT_EQ(rep.stages.size(), 3u);
  EXPECT_EQ(rep.stages[0].first_layer, 0);
  EXPECT_EQ(rep.stages[0].last_layer, 2);
  EXPECT_EQ(rep.stages[0].params, 600);
  EXPECT_EQ(rep.stages[0].cost, 6.0);
  EXPECT_EQ(rep.stages[0].cut_bytes, 33);  // the output of layer 2 crosses to stage 1
  EXPECT_EQ(rep.stages[1].cost, 14.0);
  EXPECT_EQ(rep.stages[1].cut_bytes, 55);
  EXPECT_EQ(rep.stages[2].cut_bytes, 0);  // the last stage computes the loss
  EXPECT_EQ(rep.bottleneck, 1);
  EXPECT_EQ(rep.total_cost, 21.0);
  EXPECT_DOUBLE_EQ(rep.balance, 7.0 / 14.0);
  const std::string table = rep.table();
  EXPECT_NE(table.find("1 *"), std::string::npos) << table;
  EXPECT_NE(table.find("3..4"), std::string::npos) << table;
  EXPECT_NE(table.find("predicted bottleneck: stage 1"), std::string::npos) << table;
  EXPECT_NE(table.find("(loss)"), std::string::npos) << table;
}

TEST(Partition, ClearErrors) {
  try {
    mp::uniform(3, 4);
    FAIL();
  } catch (const minipipe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot cut 3 layers into 4 stages"), std::string::npos);
  }
  EXPECT_THROW(mp::by_cost({1, 2}, 3), minipipe::Error);
  EXPECT_THROW(mp::by_params({1, 2}, 0), minipipe::Error);
  EXPECT_THROW(mp::by_cost({1, -2, 3}, 2), minipipe::Error);
  EXPECT_THROW(mp::Partition::from_bounds({0, 2, 2, 4}), minipipe::Error);  // empty stage
  EXPECT_THROW(mp::Partition::from_bounds({1, 4}), minipipe::Error);
  mp::LayerCosts three;
  three.cost = {1, 1, 1};
  EXPECT_THROW(mp::report(mp::uniform(4, 2), three), minipipe::Error);
}
