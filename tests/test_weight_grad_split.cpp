// The zero-bubble B/W split in autograd (autograd/node.h): a backward under DeferWeightGrads
// computes every gradient that flows on (the input's) and leaves Linear's weight and bias
// gradients on a queue; running the queue (W) then gives exactly the gradients of one full
// backward — on an MLP and on a GPT whose blocks hold every op family the trainers use (embedding,
// LayerNorm, attention, GELU, dropout, the LM head) — and fires the leaves' hooks only then.
#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "nn/nn.h"
#include "nn/transformer.h"

namespace minipipe {
namespace {

std::map<std::string, std::vector<double>> grads(const nn::Module& m) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : m.named_parameters())
    out[name] = t.grad().defined() ? t.grad().to_vector<double>() : std::vector<double>{};
  return out;
}

// Runs forward + loss, then backward either whole or as B (under a queue) then W; returns the
// gradient of the input (when it is a float input) and checks what B left undone.
struct Split {
  std::shared_ptr<nn::Sequential> model;
  Tensor x, y;
  std::function<Tensor(const Tensor&, const Tensor&)> loss;

  void run(bool split, std::vector<double>* input_grad) {
    for (Tensor p : model->parameters()) p.mutable_grad() = Tensor();
    Tensor xin = x;
    if (x.dtype() == DType::Float64) xin = x.detach().set_requires_grad(true);
    Tensor l = loss(model->forward(xin), y);
    if (!split) {
      l.backward();
    } else {
      autograd::WeightGradQueue q;
      {
        autograd::DeferWeightGrads defer(&q);
        l.backward();
      }
      EXPECT_FALSE(q.empty());
      // After B: the input's gradient is complete; deferred weights have none yet.
      int deferred = 0;
      for (const auto& [name, t] : model->named_parameters()) deferred += !t.grad().defined();
      EXPECT_EQ(static_cast<size_t>(deferred), q.size());
      q.run();
      EXPECT_TRUE(q.empty());
    }
    if (input_grad && xin.requires_grad()) *input_grad = xin.grad().to_vector<double>();
  }
};

TEST(WeightGradSplit, MlpBThenWEqualsOneBackward) {
  Generator gen(3);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(nn::LinearOptions(6, 16).dtype(DType::Float64).generator(&gen)),
      std::make_shared<nn::GELU>(),
      std::make_shared<nn::Linear>(nn::LinearOptions(16, 16).dtype(DType::Float64).generator(&gen)),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(nn::LinearOptions(16, 5).dtype(DType::Float64).generator(&gen).bias(false))});
  Split s{model, randn({8, 6}, DType::Float64, &gen), from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 0, 1, 2}),
          [](const Tensor& o, const Tensor& y) { return cross_entropy(o, y); }};
  std::vector<double> gx_full, gx_split;
  s.run(false, &gx_full);
  const auto full = grads(*model);
  s.run(true, &gx_split);
  EXPECT_EQ(grads(*model), full);  // bit for bit: the same GEMMs, in W instead of B
  EXPECT_EQ(gx_split, gx_full);
}

// Micro-batches accumulating into .grad(): W adds each micro-batch's dW into .grad() (inside the
// GEMM, beta = 1, as the full backward does from the second micro-batch on): the same sums, bit
// for bit.
TEST(WeightGradSplit, AccumulatedMicroBatchesMatchBitForBit) {
  Generator gen(7);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(nn::LinearOptions(5, 7).generator(&gen)), std::make_shared<nn::GELU>(),
      std::make_shared<nn::Linear>(nn::LinearOptions(7, 3).generator(&gen))});
  std::vector<Tensor> xs = {randn({4, 5}, {}, &gen), randn({4, 5}, {}, &gen), randn({4, 5}, {}, &gen)};
  auto run = [&](bool split) {
    for (Tensor p : model->parameters()) p.mutable_grad() = Tensor();
    for (const Tensor& x : xs) {
      Tensor y = model->forward(x);
      Tensor l = sum(mul(y, y));
      autograd::WeightGradQueue q;
      {
        std::optional<autograd::DeferWeightGrads> defer;
        if (split) defer.emplace(&q);
        l.backward();
      }
      q.run();
    }
    return grads(*model);
  };
  const auto full = run(false);
  EXPECT_EQ(run(true), full);
}

TEST(WeightGradSplit, GptBThenWEqualsOneBackward) {
  Generator gen(5);
  nn::GPTConfig cfg;
  cfg.vocab_size = 11;
  cfg.context = 6;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.d_model = 8;
  cfg.dropout = 0.1;
  cfg.dtype = DType::Float64;
  auto model = nn::make_gpt(cfg, &gen);
  auto random = std::make_shared<RandomContext>(9);
  model->set_random_context(random);
  std::vector<int64_t> ids(4 * 6);
  for (auto& i : ids) i = static_cast<int64_t>(gen.below(11));
  Tensor x = from_vector(ids, {4, 6});
  Split s{model, x, x, [](const Tensor& o, const Tensor& y) { return nn::gpt_loss(o, y); }};
  s.run(false, nullptr);
  const auto full = grads(*model);
  s.run(true, nullptr);
  const auto split = grads(*model);
  ASSERT_EQ(split.size(), full.size());
  for (const auto& [name, g] : full) EXPECT_EQ(split.at(name), g) << name;
}

TEST(WeightGradSplit, HooksFireInWNotInB) {
  Generator gen(1);
  auto lin = std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).dtype(DType::Float64).generator(&gen));
  int fired = 0;
  autograd::register_post_accumulate_grad_hook(lin->weight, [&](const Tensor&) { ++fired; });
  Tensor x = randn({4, 3}, DType::Float64, &gen).set_requires_grad(true);
  autograd::WeightGradQueue q;
  {
    autograd::DeferWeightGrads defer(&q);
    Tensor l = sum(lin->forward(x));
    l.backward();
  }
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(x.grad().defined());         // B: the input gradient
  EXPECT_FALSE(lin->weight.grad().defined());
  q.run();
  EXPECT_EQ(fired, 1);                     // W: the weight's gradient is complete
  EXPECT_TRUE(lin->weight.grad().defined());
  // Without a queue nothing is deferred.
  lin->weight.mutable_grad() = Tensor();
  Tensor l = sum(lin->forward(x));
  l.backward();
  EXPECT_EQ(fired, 2);
  EXPECT_TRUE(lin->weight.grad().defined());
}

}  // namespace
}  // namespace minipipe
