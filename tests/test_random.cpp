// Tests of counter-based randomness (tensor/philox.h, CounterKey, RandomContext, Module binding):
// Philox against Random123's known answers, and the property the pipeline needs — a dropout mask
// depends on (seed, site, step, sample, element) only, so cutting a batch into micro-batches,
// slicing a model into stages, recomputing, or changing the thread count never changes it.
#include <gtest/gtest.h>

#include "nn/nn.h"
#include "nn/transformer.h"
#include "tensor/philox.h"
#include "tensor/threads.h"

namespace minipipe {
namespace {

TEST(Philox, KnownAnswers) {
  // Random123's kat_vectors for philox4x32-10: counter, key -> output.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}),
            (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

Tensor mask(const Shape& shape, double p, CounterKey key) {
  return ops::dropout_mask(shape, DType::Float64, p, key);
}

TEST(CounterMask, KeepsTheRightFractionWithTheInvertedScale) {
  Tensor m = mask({100, 1000}, 0.25, {7, 0, 0});
  int64_t dropped = 0;
  for (double v : m.to_vector<double>()) {
    if (v == 0) ++dropped;
    else ASSERT_EQ(v, 1.0 / 0.75);
  }
  EXPECT_NEAR(static_cast<double>(dropped) / 100000, 0.25, 0.01);
  EXPECT_EQ(ops::sum(mask({100, 1000}, 0.0, {7, 0, 0})).item(), 100000.0);  // p = 0 keeps all
}

TEST(CounterMask, RowsOfABatchEqualTheSameRowsCutIntoMicroBatches) {
  // A batch of 8 rows masked at once, and the same rows as micro-batches of 2 and 3 + 5 with their
  // global offsets: identical. Elements per row not a multiple of 4 (Philox gives 4 per call).
  const CounterKey key{0x1234, 3, 0};
  Tensor whole = mask({8, 3, 7}, 0.5, key);
  for (int64_t mb : {1, 2, 4}) {
    std::vector<Tensor> parts;
    for (int64_t s = 0; s < 8; s += mb) parts.push_back(mask({mb, 3, 7}, 0.5, {key.key, key.step, s}));
    EXPECT_EQ(ops::cat(parts, 0).to_vector<double>(), whole.to_vector<double>()) << "micro-batches of " << mb;
  }
  Tensor uneven = ops::cat({mask({3, 3, 7}, 0.5, key), mask({5, 3, 7}, 0.5, {key.key, key.step, 3})}, 0);
  EXPECT_EQ(uneven.to_vector<double>(), whole.to_vector<double>());
  // An offset batch starts where the whole one's row 2 is.
  EXPECT_EQ(mask({1, 3, 7}, 0.5, {key.key, key.step, 2}).to_vector<double>(),
            ops::narrow(whole, 0, 2, 1).to_vector<double>());
}

TEST(CounterMask, StepKeyAndRowChangeTheMask) {
  Tensor base = mask({4, 64}, 0.5, {1, 0, 0});
  EXPECT_NE(mask({4, 64}, 0.5, {1, 1, 0}).to_vector<double>(), base.to_vector<double>());  // next step
  EXPECT_NE(mask({4, 64}, 0.5, {2, 0, 0}).to_vector<double>(), base.to_vector<double>());  // other site
  EXPECT_NE(mask({4, 64}, 0.5, {1, 0, 4}).to_vector<double>(), base.to_vector<double>());  // other rows
  // Rows of one batch are not copies of each other.
  EXPECT_NE(ops::select(base, 0, 0).to_vector<double>(), ops::select(base, 0, 1).to_vector<double>());
}

TEST(CounterMask, SameMaskForAnyThreadCount) {
  const int before = get_num_threads();
  set_num_threads(1);
  Tensor one = mask({64, 4096}, 0.3, {9, 2, 5});  // above the parallel grain
  set_num_threads(2);
  Tensor two = mask({64, 4096}, 0.3, {9, 2, 5});
  set_num_threads(before);
  EXPECT_EQ(one.to_vector<double>(), two.to_vector<double>());
}

TEST(CounterMask, RowIndicesPastThirtyTwoBitsAreAnError) {
  EXPECT_THROW(mask({2, 3}, 0.5, {1, 0, (int64_t{1} << 32) - 1}), Error);
  EXPECT_NO_THROW(mask({2, 3}, 0.5, {1, 0, (int64_t{1} << 32) - 2}));
}

TEST(RandomContext, KeysDependOnSeedSiteStepAndOffset) {
  RandomContext a(1), b(2);
  EXPECT_NE(a.key("0#drop").key, b.key("0#drop").key);
  EXPECT_NE(a.key("0#drop").key, a.key("2#drop").key);
  a.step = 5;
  a.sample_offset = 12;
  const CounterKey k = a.key("0#drop");
  EXPECT_EQ(k.step, 5u);
  EXPECT_EQ(k.sample_offset, 12);
}

nn::GPTConfig tiny_gpt(double dropout) {
  nn::GPTConfig cfg;
  cfg.vocab_size = 13;
  cfg.context = 6;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.d_model = 8;
  cfg.dropout = dropout;
  cfg.dtype = DType::Float64;
  return cfg;
}

Tensor tokens(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> ids(static_cast<size_t>(B * T));
  for (auto& i : ids) i = static_cast<int64_t>(g.below(static_cast<uint64_t>(V)));
  return from_vector(ids, {B, T});
}

// The whole GPT on a batch of 6 in training mode (dropout on embeddings, attention weights and
// residual branches) equals the same model run on micro-batches with their sample offsets — and
// equals two stages sliced from it, each bound to its own context with the same seed.
TEST(RandomContext, BoundModelMasksDoNotDependOnTheCut) {
  Generator init(3);
  auto model = nn::make_gpt(tiny_gpt(0.3), &init);
  auto ctx = std::make_shared<RandomContext>(42);
  model->set_random_context(ctx);
  ctx->step = 7;
  Tensor x = tokens(6, 6, 13, 1);
  Tensor whole = model->forward(x);

  std::vector<Tensor> parts;
  for (int64_t s = 0; s < 6; s += 2) {
    ctx->sample_offset = s;
    parts.push_back(model->forward(ops::narrow(x, 0, s, 2)));
  }
  EXPECT_EQ(ops::cat(parts, 0).to_vector<double>(), whole.to_vector<double>());

  auto stage0 = model->slice(0, 2), stage1 = model->slice(2, model->size());
  auto c0 = std::make_shared<RandomContext>(42), c1 = std::make_shared<RandomContext>(42);
  stage0->set_random_context(c0);
  stage1->set_random_context(c1);
  c0->step = c1->step = 7;
  c0->sample_offset = c1->sample_offset = 4;
  Tensor staged = stage1->forward(stage0->forward(ops::narrow(x, 0, 4, 2)));
  EXPECT_EQ(staged.to_vector<double>(), ops::narrow(whole, 0, 4, 2).to_vector<double>());

  // Dropout is really on: eval mode gives other logits, and so does the next step.
  ctx->sample_offset = 0;
  model->set_random_context(ctx);
  ctx->step = 8;
  EXPECT_NE(model->forward(x).to_vector<double>(), whole.to_vector<double>());
}

TEST(RandomContext, BoundLayersLeaveTheDefaultGeneratorAloneUnboundOnesUseIt) {
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(4, 4), std::make_shared<nn::Dropout>(0.5)});
  Tensor x = ones({3, 4});
  manual_seed(11);
  const uint64_t untouched = Generator(default_generator()).next_u64();
  model->forward(x);  // unbound: draws 12 numbers from the default generator
  EXPECT_NE(Generator(default_generator()).next_u64(), untouched);

  manual_seed(11);
  model->set_random_context(std::make_shared<RandomContext>(1));
  model->forward(x);
  EXPECT_EQ(Generator(default_generator()).next_u64(), untouched);
  model->set_random_context(nullptr);  // unbind
  model->forward(x);
  EXPECT_NE(Generator(default_generator()).next_u64(), untouched);
}

}  // namespace
}  // namespace minipipe
