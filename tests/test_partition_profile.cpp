// The by_time partitioner on a real nn::Sequential: exact parameter counts and cut sizes, a
// layer ~100x heavier than the rest measured as such and given its own stage, every layer in
// exactly one stage, the stages sharing the model's layers, and P > L a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "nn/nn.h"
#include "parallel/profile.h"
#include "tests/run_program.h"

using namespace minipipe;

namespace {
std::shared_ptr<nn::Sequential> lopsided() {
  // Layer 2 does 256x256 per row, the others 16x16: ~256x the FLOPs.
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Linear>(16, 16));
  m->push_back(std::make_shared<nn::Linear>(16, 256));
  m->push_back(std::make_shared<nn::Linear>(256, 256));
  m->push_back(std::make_shared<nn::Linear>(256, 16));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(16, 16));
  return m;
}
}  // namespace

TEST(PartitionProfile, ParamsAndCutBytesAreExact) {
  auto m = lopsided();
  auto costs = parallel::profile_layers(*m, randn({64, 16}), {.warmup = 0, .repeats = 1});
  EXPECT_EQ(costs.params, (std::vector<int64_t>{16 * 16 + 16, 16 * 256 + 256, 256 * 256 + 256, 256 * 16 + 16, 0, 16 * 16 + 16}));
  EXPECT_EQ(costs.output_bytes, (std::vector<int64_t>{64 * 16 * 4, 64 * 256 * 4, 64 * 256 * 4, 64 * 16 * 4, 64 * 16 * 4, 64 * 16 * 4}));
  for (double c : costs.cost) EXPECT_GT(c, 0.0);
  for (auto& p : m->parameters()) EXPECT_FALSE(p.grad().defined());  // profiling leaves no grads
}

// On a shared machine a layer's measured time can only grow (a preempted repetition), and the
// median of 5 repetitions survives only two such. So each check below measures up to 5 times:
// costs keep each layer's fastest measurement, and by_time must isolate the heavy layer in at
// least one of its runs. A light layer that really cost 1/4 of the heavy one fails every time.
TEST(PartitionProfile, HeavyLayerIsMeasuredHeavyAndStandsAlone) {
  auto m = lopsided();
  Tensor x = randn({512, 16});
  std::vector<double> fastest;
  for (int run = 0; run < 5; ++run) {
    auto costs = parallel::profile_layers(*m, x, {.warmup = 1, .repeats = 5});
    if (fastest.empty()) fastest = costs.cost;
    for (size_t i = 0; i < fastest.size(); ++i) fastest[i] = std::min(fastest[i], costs.cost[i]);
    if (fastest[2] > 4 * fastest[0]) break;
  }
  EXPECT_GT(fastest[2], 4 * fastest[0]) << "256x more FLOPs should cost clearly more";
  // The heavy layer dominates: the optimal 3-way cut isolates it.
  auto isolated = [](const parallel::Partition& p) {
    const int s = p.stage_of(2);
    return p.end(s) - p.begin(s) == 1;
  };
  EXPECT_TRUE(isolated(parallel::by_cost(fastest, 3)));
  bool by_time_isolated = false;
  std::string seen;
  for (int run = 0; run < 5 && !by_time_isolated; ++run) {
    auto p = parallel::by_time(*m, x, 3);
    by_time_isolated = isolated(p);
    const int s = p.stage_of(2);
    seen += " [" + std::to_string(p.begin(s)) + ", " + std::to_string(p.end(s)) + ")";
  }
  EXPECT_TRUE(by_time_isolated) << "stage of layer 2 in each run:" << seen;
}

TEST(PartitionProfile, SplitCoversEveryLayerOnceAndSharesThem) {
  auto m = lopsided();
  auto p = parallel::uniform(6, 4);
  auto stages = parallel::split(*m, p);
  ASSERT_EQ(stages.size(), 4u);
  size_t seen = 0;
  for (int s = 0; s < 4; ++s) {
    for (size_t i = 0; i < stages[s]->size(); ++i) EXPECT_EQ((*stages[s])[i].get(), (*m)[p.begin(s) + i].get());
    seen += stages[s]->size();
  }
  EXPECT_EQ(seen, m->size());
  // Chaining the stages is the model.
  Tensor x = randn({3, 16});
  Tensor h = x;
  for (auto& st : stages) h = (*st)(h);
  EXPECT_EQ(h.to_vector<float>(), (*m)(x).to_vector<float>());
}

TEST(PartitionProfile, MoreStagesThanLayersIsAnError) {
  auto m = lopsided();
  try {
    parallel::by_time(*m, randn({2, 16}), 7);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("6 layers into 7 stages"), std::string::npos) << e.what();
  }
}

// A layer that draws from its random context's sequential generator, as a user layer may.
class Noise : public nn::Module {
 public:
  Noise() : Module("Noise") {}
  Tensor forward(const Tensor& x) override {
    if (!random_context()) return x;
    return x + randn(x.sizes(), x.options(), &random_context()->generator);
  }
};

// A layer that draws from the default generator itself (as careless user code might).
class GlobalNoise : public nn::Module {
 public:
  GlobalNoise() : Module("GlobalNoise") {}
  Tensor forward(const Tensor& x) override { return x + randn(x.sizes(), x.options()); }
};

std::shared_ptr<nn::Sequential> with_dropout() {
  auto m = lopsided();
  m->push_back(std::make_shared<nn::Dropout>(0.5));
  m->push_back(std::make_shared<Noise>());
  m->push_back(std::make_shared<GlobalNoise>());
  return m;
}

TEST(PartitionProfile, LeavesGradsAndRandomStreamUntouched) {
  auto m = with_dropout();
  Tensor x = randn({8, 16});
  sum((*m)(x)).backward();
  std::vector<std::vector<float>> before;
  for (auto& p : m->parameters()) before.push_back(p.grad().to_vector<float>());
  Generator saved = default_generator();
  parallel::profile_layers(*m, x, {.warmup = 1, .repeats = 2});  // GlobalNoise draws from the default
  auto params = m->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_EQ(params[i].grad().to_vector<float>(), before[i]) << i;
  EXPECT_EQ(default_generator().next_u64(), saved.next_u64());
}

// Bound to a context: the profile binds the model to a private context while it runs (so ranks
// profiling at once share nothing) and puts the model's own bindings back: afterwards the next
// training forward is exactly what it would have been without it.
TEST(PartitionProfile, RestoresTheModelsRandomContexts) {
  Tensor x = randn({8, 16});
  auto run = [&](bool profile) {
    manual_seed(3);
    auto m = with_dropout();
    auto ctx = std::make_shared<RandomContext>(5);
    m->set_random_context(ctx);
    ctx->step = 4;
    ctx->sample_offset = 16;
    if (profile) parallel::profile_layers(*m, x, {.warmup = 1, .repeats = 2});
    EXPECT_EQ(ctx->step, 4u);
    EXPECT_EQ(ctx->sample_offset, 16);
    return (*m)(x).to_vector<float>();
  };
  EXPECT_EQ(run(true), run(false));
}

TEST(PartitionProfile, ShowPartitionProgramPrintsTablesAndRejectsBadStages) {
  auto ok = test_util::run_program("show_partition", "--model mlp --stages 2 --repeats 1 --microbatch 4");
  ASSERT_EQ(ok.status, 0) << ok.output;
  for (const char* part : {"uniform", "by_params", "by_time", "predicted bottleneck", "(loss)"})
    EXPECT_NE(ok.output.find(part), std::string::npos) << part << "\n" << ok.output;
  auto bad = test_util::run_program("show_partition", "--model mlp --stages 6");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("5 layers"), std::string::npos) << bad.output;
}
