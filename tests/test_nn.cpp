// Tests of nn/: module registration and dotted names, Sequential indexing and slicing, train /
// eval, Linear's init and forward, and the optimizers against hand-computed PyTorch updates.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/nn.h"

using namespace minipipe;

namespace {

std::shared_ptr<nn::Sequential> small_mlp() {
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(4, 3), std::make_shared<nn::ReLU>(), std::make_shared<nn::Dropout>(0.5),
      std::make_shared<nn::Linear>(3, 2)});
}

class Block : public nn::Module {
 public:
  Block() : Module("Block") {
    fc = register_module("fc", std::make_shared<nn::Linear>(2, 2));
    scale = register_parameter("scale", ones({2}));
  }
  std::shared_ptr<nn::Linear> fc;
  Tensor scale;
};

}  // namespace

TEST(Module, NamedParametersAreDottedAndOrdered) {
  auto model = std::make_shared<nn::Sequential>();
  model->push_back(std::make_shared<Block>());
  model->push_back("head", std::make_shared<nn::Linear>(2, 1));
  std::vector<std::string> names;
  for (auto& [n, _] : model->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.scale", "0.fc.weight", "0.fc.bias", "head.weight", "head.bias"}));
  EXPECT_EQ(model->num_parameters(), 2 + 4 + 2 + 2 + 1);
}

TEST(Module, RegistrationErrors) {
  Block b;
  EXPECT_THROW(b.register_parameter("scale", ones({1})), Error);  // taken
  EXPECT_THROW(b.register_parameter("a.b", ones({1})), Error);    // dot
  EXPECT_THROW(b.register_parameter("", ones({1})), Error);
  try {
    b.register_parameter("fc", ones({1}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fc' is already registered"), std::string::npos) << e.what();
  }
}

TEST(Module, RegisteredHandleIsTheParameter) {
  Block b;
  ops::fill_(b.scale, 3.0);
  EXPECT_EQ(b.named_parameters()[0].second.to_vector<float>(), (std::vector<float>{3, 3}));
  EXPECT_TRUE(b.scale.requires_grad());
}

TEST(Module, TrainEvalPropagatesAndDropoutObeysIt) {
  auto model = small_mlp();
  model->eval();
  EXPECT_FALSE((*model)[2]->is_training());
  Tensor x = ones({8, 4});
  Tensor a = (*model)(x), b = (*model)(x);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());  // no dropout in eval
  model->train();
  EXPECT_TRUE((*model)[2]->is_training());
  Tensor big = ones({1000});
  Tensor d = (*model)[2]->forward(big);
  double kept = ops::sum(ops::gt(d, zeros({}))).item();
  EXPECT_GT(kept, 400);
  EXPECT_LT(kept, 600);
  EXPECT_DOUBLE_EQ(ops::max(d).item(), 2.0);  // inverted dropout scales by 1/(1-p)
}

TEST(Sequential, IndexSliceSharesLayersAndKeepsNames) {
  auto model = small_mlp();
  ASSERT_EQ(model->size(), 4u);
  auto tail = model->slice(2, 4);
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ(tail->name_at(1), "3");
  EXPECT_EQ((*tail)[1].get(), (*model)[3].get());
  EXPECT_EQ(tail->named_parameters()[0].first, "3.weight");
  EXPECT_TRUE(tail->named_parameters()[0].second.is_same(model->named_parameters()[2].second));
  EXPECT_THROW(model->slice(3, 5), Error);
  EXPECT_THROW((*model)[4], Error);
  // head then tail equals the whole model
  model->eval();
  Tensor x = randn({5, 4});
  Tensor whole = (*model)(x);
  Tensor parts = (*model->slice(2, 4))((*model->slice(0, 2))(x));
  EXPECT_EQ(whole.to_vector<float>(), parts.to_vector<float>());
}

TEST(Linear, InitBoundsShapesAndForward) {
  manual_seed(1);
  nn::Linear fc(100, 7);
  EXPECT_EQ(fc.weight.sizes(), (Shape{7, 100}));
  const double k = 1.0 / std::sqrt(100.0);
  for (float w : fc.weight.to_vector<float>()) EXPECT_LE(std::abs(w), k);
  EXPECT_GT(ops::max(ops::abs(fc.weight)).item(), 0.9 * k);  // fills the range
  nn::Linear nb(nn::LinearOptions(2, 2).bias(false).dtype(DType::Float64));
  EXPECT_FALSE(nb.bias.defined());
  EXPECT_EQ(nb.parameters().size(), 1u);
  ops::copy_(nb.weight, from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}));
  Tensor y = nb(from_vector(std::vector<double>{1, 1}, {1, 2}));
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{3, 7}));
  EXPECT_THROW(fc(ones({3, 99})), Error);
  EXPECT_EQ(fc.repr(), "Linear(in_features=100, out_features=7, bias=true)");
}

namespace {
// Runs three steps of `opt` on p0 = [1, -2] with fixed gradients.
template <typename Opt, typename Options>
std::vector<std::vector<double>> three_steps(Options o) {
  Tensor p = from_vector(std::vector<double>{1.0, -2.0}).set_requires_grad(true);
  Opt opt({p}, o);
  std::vector<std::vector<double>> gs = {{0.5, -1.0}, {0.25, 2.0}, {-1.0, 0.5}}, out;
  for (auto& g : gs) {
    p.mutable_grad() = from_vector(g);
    opt.step();
    out.push_back(p.to_vector<double>());
  }
  return out;
}
}  // namespace

TEST(Optim, AdamWMatchesHandComputedUpdates) {
  // Computed by hand (PyTorch's AdamW rule) in double precision.
  auto got = three_steps<optim::AdamW>(optim::AdamWOptions{.lr = 0.1, .weight_decay = 0.01});
  std::vector<std::vector<double>> want = {{0.899000002, -1.898000001},
                                           {0.8048830404754623, -1.9327123534710748},
                                           {0.824713859842936, -1.9723447607923026}};
  for (size_t s = 0; s < 3; ++s)
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got[s][i], want[s][i], 1e-12) << "step " << s << " elem " << i;
}

TEST(Optim, SGDNesterovMatchesHandComputedUpdates) {
  auto got = three_steps<optim::SGD>(optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
  std::vector<std::vector<double>> want = {{0.886, -1.772}, {0.773066, -2.021132}, {0.877211146, -2.137897292}};
  for (size_t s = 0; s < 3; ++s)
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got[s][i], want[s][i], 1e-12) << "step " << s << " elem " << i;
}

TEST(Optim, SGDMomentumWithDampeningMatchesHandComputedUpdates) {
  // buf = g on the first step, then 0.9 buf + 0.5 g; p -= 0.1 buf.
  auto got = three_steps<optim::SGD>(optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  std::vector<std::vector<double>> want = {{0.95, -1.9}, {0.8925, -1.91}, {0.89075, -1.944}};
  for (size_t s = 0; s < 3; ++s)
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got[s][i], want[s][i], 1e-12) << "step " << s << " elem " << i;
}

// The raw op under SGD::step, without momentum (its bad operands: OpErrors in test_tensor_ops.cpp).
TEST(Optim, SGDStepOpWithoutMomentum) {
  const Tensor p = ones({3}), g = ones({3});
  ops::sgd_step_(p, g, Tensor(), {.lr = 0.5, .weight_decay = 1.0});  // d = 1 + 1: p = 1 - 0.5 * 2
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{0, 0, 0}));
}

TEST(Optim, PlainSGDAndSkipsParamsWithoutGrad) {
  Tensor p = from_vector(std::vector<double>{1.0}).set_requires_grad(true);
  Tensor q = from_vector(std::vector<double>{5.0}).set_requires_grad(true);
  optim::SGD opt({p, q}, {.lr = 0.5});
  p.mutable_grad() = from_vector(std::vector<double>{2.0});
  opt.step();
  EXPECT_EQ(p.item(), 0.0);
  EXPECT_EQ(q.item(), 5.0);
  opt.zero_grad();
  EXPECT_FALSE(p.grad().defined());
  EXPECT_THROW(optim::SGD({p}, {.lr = 0.1, .momentum = 0.0, .nesterov = true}), Error);
  EXPECT_THROW(optim::AdamW({p}, {.lr = -1.0}), Error);
}

TEST(Optim, ParamGroupsKeepTheirOwnWeightDecay) {
  Tensor a = from_vector(std::vector<double>{1.0}).set_requires_grad(true);
  Tensor b = from_vector(std::vector<double>{1.0}).set_requires_grad(true);
  optim::SGD opt(std::vector<optim::ParamGroup>{{{a}, -1, 0.5}, {{b}, -1, 0.0}}, {.lr = 0.1, .weight_decay = 0.0});
  a.mutable_grad() = zeros({1}, DType::Float64);
  b.mutable_grad() = zeros({1}, DType::Float64);
  opt.step();
  EXPECT_DOUBLE_EQ(a.item(), 1.0 - 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(b.item(), 1.0);
  opt.set_lr(0.2);
  EXPECT_EQ(opt.lr(), 0.2);
}

// A parameter with a zero-size dim (a layer with no outputs) is a valid, contiguous leaf.
TEST(Optim, AcceptsParametersWithNoElements) {
  Tensor w = zeros({2, 0});
  w.set_requires_grad(true);
  w.mutable_grad() = zeros({2, 0});
  optim::AdamW adam({w}, {.lr = 1e-3});
  optim::SGD sgd({w}, {.lr = 0.1});
  EXPECT_NO_THROW(adam.step());
  EXPECT_NO_THROW(sgd.step());
  EXPECT_EQ(w.sizes(), (Shape{2, 0}));
}

TEST(Optim, ClipGradNorm) {
  Tensor a = zeros({2}, DType::Float64).set_requires_grad(true);
  Tensor b = zeros({1}, DType::Float64).set_requires_grad(true);
  a.mutable_grad() = from_vector(std::vector<double>{3.0, 0.0});
  b.mutable_grad() = from_vector(std::vector<double>{4.0});
  double norm = optim::clip_grad_norm_({a, b}, 1.0);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  EXPECT_NEAR(a.grad().to_vector<double>()[0], 0.6, 1e-6);
  EXPECT_NEAR(b.grad().item(), 0.8, 1e-6);
  EXPECT_DOUBLE_EQ(optim::clip_grad_norm_({a, b}, 10.0), std::sqrt(0.6 * 0.6 + 0.8 * 0.8) * 5.0 / (5.0 + 1e-6));
}

TEST(Optim, CosineScheduleWithWarmup) {
  EXPECT_DOUBLE_EQ(optim::cosine_lr(0, 100, 1.0, 0.0, 10), 0.1);
  EXPECT_DOUBLE_EQ(optim::cosine_lr(9, 100, 1.0, 0.0, 10), 1.0);
  EXPECT_DOUBLE_EQ(optim::cosine_lr(10, 100, 1.0, 0.0, 10), 1.0);
  EXPECT_NEAR(optim::cosine_lr(55, 100, 1.0, 0.0, 10), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(optim::cosine_lr(100, 100, 1.0, 0.1, 10), 0.1);
  EXPECT_NEAR(optim::cosine_lr(50, 100, 2.0, 0.0), 1.0, 1e-12);
}

TEST(Training, MlpLearnsASyntheticProblem) {
  // Two-class problem a linear layer cannot solve (XOR of signs); the MLP must.
  manual_seed(3);
  Tensor x = randn({256, 2});
  std::vector<int64_t> labels;
  auto v = x.to_vector<float>();
  for (int i = 0; i < 256; ++i) labels.push_back((v[2 * i] > 0) != (v[2 * i + 1] > 0));
  Tensor y = from_vector(labels);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(2, 32), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(32, 2)});
  optim::AdamW opt(model->parameters(), {.lr = 0.02, .weight_decay = 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    Tensor loss = cross_entropy((*model)(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  EXPECT_GT(first, 0.6);
  EXPECT_LT(last, 0.15);
}

TEST(Optim, AdamWCountsStepsPerParameter) {
  // b gets its first gradient at the second step: like PyTorch, its bias correction is that of
  // step 1, so its first move is lr * sign(g) (up to eps), exactly as a's first move was.
  Tensor a = from_vector(std::vector<double>{0.0}).set_requires_grad(true);
  Tensor b = from_vector(std::vector<double>{0.0}).set_requires_grad(true);
  optim::AdamW opt({a, b}, {.lr = 0.1, .weight_decay = 0.0});
  a.mutable_grad() = from_vector(std::vector<double>{3.0});
  opt.step();
  EXPECT_NEAR(a.item(), -0.1, 1e-9);
  b.mutable_grad() = from_vector(std::vector<double>{-5.0});
  opt.step();
  EXPECT_NEAR(b.item(), 0.1, 1e-9);
}
