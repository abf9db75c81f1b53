// The autograd engine's behaviour (autograd/node.h, engine.cpp): gradient accumulation, shared
// inputs, explicit output gradients, released graphs, NoGradGuard, detach and requires_grad.
// Op-by-op gradient correctness lives in test_gradcheck.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"

namespace minipipe {
namespace {

using V = std::vector<double>;

Tensor leaf(V v, Shape s = {}) {
  Tensor t = from_vector(v, std::move(s));
  t.set_requires_grad(true);
  return t;
}

V grad_of(const Tensor& t) {
  EXPECT_TRUE(t.grad().defined());
  return t.grad().defined() ? t.grad().to_vector<double>() : V{};
}

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected minipipe::Error";
  return "";
}

TEST(Autograd, ScalarBackwardGivesExactGradients) {
  Tensor x = leaf({1, 2, 3});
  Tensor y = sum(x * x * 3.0);  // dy/dx = 6x
  EXPECT_EQ(y.dim(), 0);
  y.backward();
  EXPECT_EQ(grad_of(x), (V{6, 12, 18}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1, -2});
  sum(x * 2.0).backward();
  EXPECT_EQ(grad_of(x), (V{2, 2}));
  sum(x * x).backward();  // + 2x
  EXPECT_EQ(grad_of(x), (V{4, -2}));
  // Clearing the slot starts afresh (what zero_grad does).
  x.mutable_grad() = Tensor();
  sum(x).backward();
  EXPECT_EQ(grad_of(x), (V{1, 1}));
}

TEST(Autograd, TensorUsedTwiceGetsTheSum) {
  Tensor x = leaf({3});
  (x * x).backward();  // 2x
  EXPECT_EQ(grad_of(x), (V{6}));
  Tensor w = leaf({2});
  // A diamond: a = 2w and b = 5w both feed y = a * b = 10 w^2 -> dy/dw = 20 w.
  Tensor a = w * 2.0, b = w * 5.0;
  (a * b + w).backward();  // + 1 through the direct edge
  EXPECT_EQ(grad_of(w), (V{41}));
  // The same tensor in one op's input list twice, through a broadcast.
  Tensor z = leaf({1, 2});
  sum(add(z, z)).backward();
  EXPECT_EQ(grad_of(z), (V{2, 2}));
}

TEST(Autograd, ExplicitOutputGradientForNonScalarOutput) {
  Tensor x = leaf({1, 2, 3});
  Tensor y = x * from_vector(V{1, 2, 3});  // non-scalar
  y.backward(from_vector(V{1, 10, 100}));
  EXPECT_EQ(grad_of(x), (V{1, 20, 300}));
  // The output gradient is converted to the output's dtype.
  Tensor x2 = leaf({1, 2});
  (x2 * 2.0).backward(from_vector(std::vector<float>{1, 1}));
  EXPECT_EQ(grad_of(x2), (V{2, 2}));
  EXPECT_EQ(x2.grad().dtype(), DType::Float64);
  // A matrix output, as the pipeline's backward(output, grad_output) uses it.
  Tensor w = leaf({1, 2, 3, 4}, {2, 2});
  Tensor out = matmul(from_vector(V{1, 0, 0, 1, 1, 1}, {3, 2}), w);  // [3, 2]
  out.backward(ones({3, 2}, DType::Float64));
  EXPECT_EQ(grad_of(w), (V{2, 2, 2, 2}));
}

TEST(Autograd, NonScalarBackwardWithoutGradientThrows) {
  Tensor x = leaf({1, 2});
  Tensor y = x * 2.0;
  std::string msg = error_of([&] { y.backward(); });
  EXPECT_NE(msg.find("scalar"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2]"), std::string::npos) << msg;
  msg = error_of([&] { y.backward(ones({3}, DType::Float64)); });
  EXPECT_NE(msg.find("gradient shape [3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("output shape [2]"), std::string::npos) << msg;
  // A one-element non-0-dim output is fine.
  sum(x, {0}, true).backward();
  EXPECT_EQ(grad_of(x), (V{1, 1}));
}

TEST(Autograd, BackwardOnTensorWithoutGraphThrows) {
  Tensor x = from_vector(V{1, 2});
  std::string msg = error_of([&] { sum(x).backward(); });
  EXPECT_NE(msg.find("does not require grad"), std::string::npos) << msg;
}

TEST(Autograd, ReleasedGraphThrowsClearError) {
  Tensor x = leaf({1, 2});
  Tensor y = sum(exp(x) * 2.0);
  y.backward();
  const V first = grad_of(x);
  std::string msg = error_of([&] { y.backward(); });
  EXPECT_NE(msg.find("released"), std::string::npos) << msg;
  EXPECT_NE(msg.find("retain_graph=true"), std::string::npos) << msg;
  EXPECT_NE(msg.find("SumBackward"), std::string::npos) << msg;  // names the node
  EXPECT_EQ(grad_of(x), first);  // the failed backward added nothing
}

TEST(Autograd, RetainGraphAllowsASecondBackward) {
  Tensor x = leaf({1, 2});
  Tensor y = sum(x * x * x);  // 3x^2
  y.backward(/*retain_graph=*/true);
  EXPECT_EQ(grad_of(x), (V{3, 12}));
  y.backward();  // the graph is still there; this one releases it
  EXPECT_EQ(grad_of(x), (V{6, 24}));
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, BackwardReleasesSavedTensors) {
  Tensor x = leaf({1, 2, 3});
  std::weak_ptr<Storage> saved;
  Tensor y;
  {
    Tensor a = exp(x);  // intermediate: only the graph keeps it (MulBackward saves it)
    saved = a.storage();
    y = sum(a * a);
  }
  EXPECT_FALSE(saved.expired());  // held by the graph until backward runs
  y.backward();
  EXPECT_TRUE(saved.expired());   // released after use
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1, 2});
  EXPECT_TRUE(autograd::GradMode::is_enabled());
  {
    NoGradGuard guard;
    EXPECT_FALSE(autograd::GradMode::is_enabled());
    Tensor y = exp(x) * x;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_TRUE(y.is_leaf());
    {
      NoGradGuard nested;
    }
    EXPECT_FALSE(autograd::GradMode::is_enabled());  // the nested guard restores "off"
  }
  EXPECT_TRUE(autograd::GradMode::is_enabled());
  Tensor z = exp(x);
  EXPECT_TRUE(z.requires_grad());
  EXPECT_NE(z.grad_fn(), nullptr);
  EXPECT_EQ(z.grad_fn()->name(), "ExpBackward");
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = leaf({1, 2});
  Tensor y = x * 3.0;
  Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_TRUE(d.shares_storage(y));
  EXPECT_EQ(d.to_vector<double>(), (V{3, 6}));
  // z = d * x: the gradient sees d as a constant, not as 3x.
  sum(d * x).backward();
  EXPECT_EQ(grad_of(x), (V{3, 6}));
  EXPECT_THROW(sum(d * 2.0).backward(), Error);
}

TEST(Autograd, RequiresGradPropagation) {
  Tensor a = leaf({1, 2});
  Tensor b = from_vector(V{3, 4});
  EXPECT_TRUE(a.is_leaf());
  EXPECT_FALSE(b.requires_grad());
  Tensor c = a + b;
  EXPECT_TRUE(c.requires_grad());
  EXPECT_FALSE(c.is_leaf());
  EXPECT_EQ(c.grad_fn()->name(), "AddBackward");
  EXPECT_EQ(c.grad_fn()->next_edges().size(), 2u);
  EXPECT_TRUE(c.grad_fn()->next_edges()[0].valid());
  EXPECT_FALSE(c.grad_fn()->next_edges()[1].valid());  // b needs no gradient
  Tensor d = b * b;
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.grad_fn(), nullptr);
  // Views of a tensor that requires grad require grad too.
  EXPECT_TRUE(transpose(unsqueeze(a, 0), 0, 1).requires_grad());
  // Only leaves get .grad(); the intermediate's slot stays empty.
  sum(c * c).backward();
  EXPECT_EQ(grad_of(a), (V{8, 12}));
  EXPECT_FALSE(c.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(Autograd, SetRequiresGradRules) {
  Tensor a = leaf({1});
  Tensor c = a * 2.0;
  std::string msg = error_of([&] { c.set_requires_grad(false); });
  EXPECT_NE(msg.find("leaf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("detach"), std::string::npos) << msg;
  msg = error_of([&] { from_vector(std::vector<int64_t>{1}).set_requires_grad(true); });
  EXPECT_NE(msg.find("floating-point"), std::string::npos) << msg;
  // Turning it off on a leaf is fine, and ops stop recording.
  a.set_requires_grad(false);
  EXPECT_FALSE((a * 2.0).requires_grad());
}

TEST(Autograd, InputNotReachedHasNoGrad) {
  Tensor a = leaf({1, 2}), b = leaf({3, 4});
  Tensor y = sum(a * 2.0);
  Tensor unused = b * 2.0;
  y.backward();
  EXPECT_EQ(grad_of(a), (V{2, 2}));
  EXPECT_FALSE(b.grad().defined());
  // A branch whose gradient is cut by detach still lets the rest of the graph run.
  Tensor x = leaf({2});
  Tensor h = x * 3.0;
  Tensor z = h * h.detach() + h;  // dz/dx = 3 * h + 3 = 21
  z.backward();
  EXPECT_EQ(grad_of(x), (V{21}));
}

TEST(Autograd, BackwardOfALeafAndOfSeveralRoots) {
  Tensor x = leaf({1, 2});
  x.backward(from_vector(V{5, 6}));
  EXPECT_EQ(grad_of(x), (V{5, 6}));
  x.mutable_grad() = Tensor();
  // Two roots, one of which feeds the other: y1 = 2x, y2 = y1 * x = 2x^2.
  Tensor y1 = x * 2.0;
  Tensor y2 = y1 * x;
  autograd::backward({y1, y2}, {ones({2}, DType::Float64), ones({2}, DType::Float64)});
  EXPECT_EQ(grad_of(x), (V{2 + 4, 2 + 8}));
  EXPECT_THROW(autograd::backward({y1}, {}), Error);
}

TEST(Autograd, ViewsAndBroadcastsRouteGradients) {
  Tensor w = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  // Column 1 of w, broadcast against a [2, 2] tensor and summed: each element gets 2.
  Tensor col = unsqueeze(select(w, 1, 1), 1);  // [2, 1]
  sum(col * ones({2, 2}, DType::Float64)).backward();
  EXPECT_EQ(grad_of(w), (V{0, 2, 0, 0, 2, 0}));
  w.mutable_grad() = Tensor();
  // Every other column, transposed.
  sum(transpose(slice(w, 1, 0, 3, 2), 0, 1) * from_vector(V{1, 2, 3, 4}, {2, 2})).backward();
  EXPECT_EQ(grad_of(w), (V{1, 0, 3, 2, 0, 4}));
}

TEST(Autograd, Float32LeafGetsFloat32Grad) {
  Tensor x = ones({3}).set_requires_grad(true);
  sum(x * 4.0).backward();
  EXPECT_EQ(x.grad().dtype(), DType::Float32);
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{4, 4, 4}));
}

TEST(Autograd, DeepChain) {
  // 300k nodes: the engine walks the graph iteratively, and freeing it (Node::~Node) must not
  // recurse once per node either, or the stack overflows.
  Tensor x = leaf({1});
  Tensor y = x;
  for (int i = 0; i < 300000; ++i) y = y + 1.0;
  y.backward();
  EXPECT_EQ(grad_of(x), (V{1}));
  EXPECT_EQ(y.item(), 300001.0);
  y = Tensor();  // frees the (released) graph
  Tensor z = x;
  for (int i = 0; i < 300000; ++i) z = z * 1.0;
  z = Tensor();  // frees a graph that never ran backward
  SUCCEED();
}

// Gradient accumulation fusion: from the second backward on, linear adds dW into the weight's
// .grad() inside the GEMM (no [out, in] temporary), the sum is the same, and the hooks still fire
// once per backward, after the last contribution — also when the weight is used twice.
TEST(PostAccumulateGradHook, FiresAfterGradientsAddedInPlace) {
  Generator g(11);
  Tensor w = randn({64, 48}, DType::Float64, &g).set_requires_grad(true);
  Tensor b = zeros({64}, DType::Float64).set_requires_grad(true);
  Tensor x1 = randn({3, 48}, DType::Float64, &g), x2 = randn({3, 48}, DType::Float64, &g);
  int fired = 0;
  autograd::register_post_accumulate_grad_hook(w, [&](const Tensor&) { ++fired; });
  const auto once = [&](const Tensor& v, const Tensor& x) {
    Tensor y = linear(x, v, b);
    return sum(y * y.detach());
  };
  const auto twice = [&](const Tensor& v) { return sum(linear(x1, v, Tensor()) + linear(x1 * 2.0, v, Tensor())); };
  // The reference: one loss's gradient alone, on a fresh leaf with w's values.
  const auto alone = [&](const std::function<Tensor(const Tensor&)>& loss) {
    Tensor v = w.detach().set_requires_grad(true);
    loss(v).backward();
    return v.grad().to_vector<double>();
  };
  const auto near = [](const V& got, const V& want) {
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
    return got.size() == want.size() && worst <= 1e-12;
  };
  once(w, x1).backward();  // the first: dW a fresh tensor, kept as .grad()
  EXPECT_EQ(fired, 1);
  const Tensor first = w.grad();
  auto account = std::make_shared<MemoryAccount>();
  {
    MemoryAccountGuard guard(account);
    Tensor loss = once(w, x2);
    account->reset_peak();
    const int64_t before = account->live();
    loss.backward();
    // The second: summed into .grad() inside the GEMM; a temporary dW would add 64 * 48 * 8 bytes.
    EXPECT_LT(account->peak() - before, 64 * 48 * 8) << account->peak() - before;
  }
  EXPECT_EQ(fired, 2);
  EXPECT_TRUE(w.grad().is_same(first));
  V want = alone([&](const Tensor& v) { return once(v, x1); });
  const V second = alone([&](const Tensor& v) { return once(v, x2); });
  for (size_t i = 0; i < want.size(); ++i) want[i] += second[i];
  EXPECT_TRUE(near(w.grad().to_vector<double>(), want));
  // Used twice in one backward: both contributions go in place, the hook fires once.
  twice(w).backward();
  EXPECT_EQ(fired, 3);
  const V third = alone(twice);
  for (size_t i = 0; i < want.size(); ++i) want[i] += third[i];
  EXPECT_TRUE(near(w.grad().to_vector<double>(), want));
}

}  // namespace
}  // namespace minipipe

namespace minipipe {

TEST(AutogradReview, SliceOfAnExpandedLeafGetsItsGradInPlace) {
  Tensor t = ops::expand(from_vector(std::vector<double>{1.0}), {5}).set_requires_grad(true);
  sum(slice(t, 0, 2, 4)).backward();
  EXPECT_EQ(t.grad().to_vector<double>(), (std::vector<double>{0, 0, 1, 1, 0}));
  Tensor u = from_vector(std::vector<double>{1, 2, 3, 4, 5}).set_requires_grad(true);
  sum(slice(u, 0, -4, 100, 2)).backward();  // negative start, clamped end, step
  EXPECT_EQ(u.grad().to_vector<double>(), (std::vector<double>{0, 1, 0, 1, 0}));
}

TEST(AutogradReview, ReducingA0DimTensorOverDim0HasA0DimGrad) {
  Tensor s = scalar_tensor(2.0, DType::Float64).set_requires_grad(true);
  sum(s, {0}).backward();
  EXPECT_EQ(s.grad().dim(), 0);
  EXPECT_EQ(s.grad().item(), 1.0);
  Tensor m = scalar_tensor(2.0, DType::Float64).set_requires_grad(true);
  mean(m, {-1}).backward();
  EXPECT_EQ(m.grad().item(), 1.0);
}

TEST(AutogradReview, BadSizesAndExpandedDestinationsAreErrors) {
  EXPECT_THROW(ops::expand(ones({1}), {-2}), Error);
  EXPECT_THROW(arange(0.0, INFINITY), Error);
  EXPECT_THROW(zeros({int64_t{1} << 62, 4}), Error);
  EXPECT_THROW(ops::fill_(ops::expand(ones({1}), {4}), 2.0), Error);
  EXPECT_THROW(ops::add_(ops::expand(ones({1}), {4}), ones({4})), Error);
}

// The gradient-ready signal: once per leaf per backward, when its grad holds every contribution.
// A leaf's first gradient is kept rather than copied when nobody else can see its memory (a
// freshly computed tensor), and copied when someone can: the user's own grad_output, or one
// gradient handed to two leaves by add's backward (their .grad()s must never alias).
TEST(Autograd, FirstGradientIsKeptOnlyWhenNobodyElseSeesIt) {
  auto account = std::make_shared<MemoryAccount>();
  MemoryAccountGuard guard(account);
  Tensor x = leaf(V(1000, 1.0), {1000});
  Tensor loss = sum(x) * 3.0;
  account->reset_peak();
  const int64_t before = account->live();
  loss.backward();
  EXPECT_EQ(grad_of(x), V(1000, 3.0));
  EXPECT_EQ(account->live() - before, 8000);  // x.grad(), nothing else
  // sum's backward makes the one [1000] gradient; a copy of it into .grad() would be a second.
  EXPECT_LT(account->peak() - before, 8000 + 64) << account->peak() - before;

  Tensor a = leaf({1, 2}, {2}), b = leaf({3, 4}, {2});
  ((a + b) * 2.0).backward(from_vector(V{1, 1}));
  EXPECT_FALSE(a.grad().shares_storage(b.grad()));
  ops::add_(a.grad(), full({2}, 10.0, DType::Float64));
  EXPECT_EQ(grad_of(a), (V{12, 12}));
  EXPECT_EQ(grad_of(b), (V{2, 2}));

  Tensor y = leaf({1, 2}, {2});
  Tensor g = from_vector(V{5, 6});
  y.backward(g);
  EXPECT_FALSE(y.grad().shares_storage(g));
  ops::fill_(g, 0.0);
  EXPECT_EQ(grad_of(y), (V{5, 6}));
}

TEST(PostAccumulateGradHook, FiresOncePerBackwardAfterTheLastContribution) {
  Tensor w = from_vector(V{1, 2, 3}).set_requires_grad(true);
  Tensor x = from_vector(V{4, 5, 6});
  std::vector<V> seen;  // w's grad at each call
  const int id = autograd::register_post_accumulate_grad_hook(
      w, [&](const Tensor& leaf) { seen.push_back(leaf.grad().to_vector<double>()); });
  // w enters three times, at different depths: dL/dw = x + 2w + 1.
  auto loss = [&] { return sum(w * x) + sum(w * w) + sum(exp(log(w))); };
  loss().backward();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (V{7, 10, 13}));
  // Gradient accumulation: a second backward fires again, with the sum of both.
  loss().backward();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], (V{14, 20, 26}));
  // A backward that does not reach w does not fire; a removed hook never fires.
  Tensor other = from_vector(V{1}).set_requires_grad(true);
  sum(other * 2.0).backward();
  EXPECT_EQ(seen.size(), 2u);
  autograd::remove_post_accumulate_grad_hook(w, id);
  loss().backward();
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_THROW(autograd::register_post_accumulate_grad_hook(w * 2.0, [](const Tensor&) {}), Error);  // not a leaf
}

}  // namespace minipipe
