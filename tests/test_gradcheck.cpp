// Gradient checks of every differentiable op in autograd/functions.h, by central differences in
// float64 (autograd/gradcheck.h). One table entry per case: adding an op is one line.
// Also checks that gradcheck itself catches a wrong backward.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"

namespace minipipe {
namespace {

using autograd::GradcheckOptions;
using autograd::gradcheck;
using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

// How the inputs are drawn. Ops with kinks or restricted domains get inputs kept away from them.
enum class Init {
  Normal,    // N(0, 1)
  Positive,  // U[0.5, 2): log, sqrt, pow with fractional exponents, divisors
  AwayFromZero,  // N(0, 1) pushed out of (-0.2, 0.2): relu's kink at 0
  Distinct,  // a shuffled grid with gaps of 0.1: max never ties, not even after +-eps
};

struct GradCase {
  std::string name;
  std::vector<Shape> shapes;  // one float64 input requiring grad per shape
  Fn fn;
  Init init = Init::Normal;
  GradcheckOptions opts = {};  // per-op tolerance hook
};

GradcheckOptions loose(double eps, double atol, double rtol) {
  GradcheckOptions o;
  o.eps = eps;
  o.atol = atol;
  o.rtol = rtol;
  return o;
}

Tensor make_input(const Shape& shape, Init init, Generator& gen) {
  Tensor t = randn(shape, DType::Float64, &gen);
  double* p = t.data_ptr<double>();
  const int64_t n = t.numel();
  switch (init) {
    case Init::Normal: break;
    case Init::Positive:
      for (int64_t i = 0; i < n; ++i) p[i] = 0.5 + 1.5 * gen.uniform();
      break;
    case Init::AwayFromZero:
      for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0 ? p[i] - 0.2 : p[i] + 0.2;
      break;
    case Init::Distinct:
      for (int64_t i = 0; i < n; ++i) p[i] = 0.1 * static_cast<double>(i - n / 2);
      for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[gen.below(static_cast<uint64_t>(i + 1))]);
      break;
  }
  t.set_requires_grad(true);
  return t;
}

// Constants the lambdas close over (no grad).
Tensor f64(std::vector<double> v, Shape s = {}) { return from_vector(v, std::move(s)); }
using Vi = std::vector<int64_t>;
Tensor i64(Vi v) { return from_vector(v); }

std::vector<GradCase> cases() {
  const Tensor mask23 = f64({1, 0, 0, 1, 1, 0}, {2, 3});
  const Tensor mask3 = f64({0, 1, 1}, {3});
  const Tensor targets4 = i64({2, 0, 4, 2});
  return {
      // ---- elementwise, binary, with broadcasting ----
      {"add", {{2, 3}, {2, 3}}, [](const Inputs& x) { return x[0] + x[1]; }},
      {"add_broadcast_col_row", {{3, 1}, {1, 4}}, [](const Inputs& x) { return x[0] + x[1]; }},
      {"add_broadcast_rank", {{4}, {2, 3, 4}}, [](const Inputs& x) { return add(x[0], x[1]); }},
      {"sub", {{2, 3}, {2, 3}}, [](const Inputs& x) { return x[0] - x[1]; }},
      {"sub_broadcast", {{2, 1, 4}, {3, 1}}, [](const Inputs& x) { return sub(x[0], x[1]); }},
      {"mul", {{2, 3}, {2, 3}}, [](const Inputs& x) { return x[0] * x[1]; }},
      {"mul_broadcast_rank", {{4}, {2, 3, 4}}, [](const Inputs& x) { return x[0] * x[1]; }},
      {"mul_self", {{5}}, [](const Inputs& x) { return x[0] * x[0]; }},
      {"div", {{2, 3}, {2, 3}}, [](const Inputs& x) { return x[0] / x[1]; }, Init::Positive},
      {"div_broadcast", {{3, 1}, {1, 4}}, [](const Inputs& x) { return div(x[0], x[1]); }, Init::Positive},
      {"add_scalar", {{2, 3}}, [](const Inputs& x) { return x[0] + 1.5; }},
      {"scalar_minus", {{2, 3}}, [](const Inputs& x) { return 2.0 - x[0]; }},
      {"minus_scalar", {{2, 3}}, [](const Inputs& x) { return x[0] - 2.0; }},
      {"mul_scalar", {{2, 3}}, [](const Inputs& x) { return -3.0 * x[0]; }},
      {"div_scalar", {{2, 3}}, [](const Inputs& x) { return x[0] / 4.0; }},
      {"neg", {{2, 3}}, [](const Inputs& x) { return -x[0]; }},
      // ---- elementwise, unary ----
      {"pow_2", {{2, 3}}, [](const Inputs& x) { return pow(x[0], 2.0); }},
      {"pow_3", {{2, 3}}, [](const Inputs& x) { return pow(x[0], 3.0); }},
      {"pow_frac", {{2, 3}}, [](const Inputs& x) { return pow(x[0], 1.5); }, Init::Positive},
      {"pow_neg", {{2, 3}}, [](const Inputs& x) { return pow(x[0], -0.5); }, Init::Positive},
      {"exp", {{2, 3}}, [](const Inputs& x) { return exp(x[0]); }},
      {"log", {{2, 3}}, [](const Inputs& x) { return log(x[0]); }, Init::Positive},
      {"sqrt", {{2, 3}}, [](const Inputs& x) { return sqrt(x[0]); }, Init::Positive},
      {"tanh", {{2, 3}}, [](const Inputs& x) { return tanh(x[0]); }},
      {"sigmoid", {{2, 3}}, [](const Inputs& x) { return sigmoid(x[0]); }},
      {"sigmoid_large", {{4}}, [](const Inputs& x) { return sigmoid(x[0] * 8.0); }},
      {"relu", {{3, 4}}, [](const Inputs& x) { return relu(x[0]); }, Init::AwayFromZero},
      {"gelu", {{3, 4}}, [](const Inputs& x) { return gelu(x[0]); }},
      {"gelu_wide", {{8}}, [](const Inputs& x) { return gelu(x[0] * 3.0); }},
      {"where", {{2, 3}, {2, 3}}, [=](const Inputs& x) { return where(mask23, x[0], x[1]); }},
      {"where_broadcast", {{3}, {2, 1}}, [=](const Inputs& x) { return where(mask23, x[0], x[1]); }},
      {"masked_fill", {{2, 3}}, [=](const Inputs& x) { return masked_fill(x[0], mask23, -7.0); }},
      {"masked_fill_broadcast", {{2, 3}}, [=](const Inputs& x) { return masked_fill(x[0], mask3, 0.0); }},
      // ---- reductions ----
      {"sum_all", {{2, 3, 4}}, [](const Inputs& x) { return sum(x[0]); }},
      {"sum_dim0", {{2, 3, 4}}, [](const Inputs& x) { return sum(x[0], {0}); }},
      {"sum_dims_keepdim", {{2, 3, 4}}, [](const Inputs& x) { return sum(x[0], {0, 2}, true); }},
      {"sum_negdim", {{2, 3, 4}}, [](const Inputs& x) { return sum(x[0], {-1, 0}); }},
      {"mean_all", {{2, 3, 4}}, [](const Inputs& x) { return mean(x[0]); }},
      {"mean_dim", {{2, 3, 4}}, [](const Inputs& x) { return mean(x[0], {1}); }},
      {"mean_dims_keepdim", {{2, 3, 4}}, [](const Inputs& x) { return mean(x[0], {2, 0}, true); }},
      {"amax_last", {{3, 4}}, [](const Inputs& x) { return amax(x[0], -1); }, Init::Distinct},
      {"amax_dim0_keepdim", {{3, 4}}, [](const Inputs& x) { return amax(x[0], 0, true); }, Init::Distinct},
      {"amax_mid", {{2, 3, 4}}, [](const Inputs& x) { return amax(x[0], 1); }, Init::Distinct},
      {"amax_1d", {{5}}, [](const Inputs& x) { return amax(x[0], 0); }, Init::Distinct},
      // ---- views ----
      {"view", {{2, 6}}, [](const Inputs& x) { return view(x[0], {3, 4}); }},
      {"view_infer", {{2, 6}}, [](const Inputs& x) { return view(x[0], {-1, 2}); }},
      {"reshape", {{2, 6}}, [](const Inputs& x) { return reshape(x[0], {4, 3}); }},
      {"reshape_noncontig", {{3, 4}}, [](const Inputs& x) { return reshape(transpose(x[0], 0, 1), {2, 6}); }},
      {"flatten", {{2, 3, 4}}, [](const Inputs& x) { return flatten(x[0], 1); }},
      {"flatten_noncontig", {{2, 3, 4}}, [](const Inputs& x) { return flatten(permute(x[0], {2, 0, 1})); }},
      {"transpose", {{2, 3}}, [](const Inputs& x) { return transpose(x[0], 0, 1); }},
      {"transpose_3d_neg", {{2, 3, 4}}, [](const Inputs& x) { return transpose(x[0], -1, 0); }},
      {"permute", {{2, 3, 4}}, [](const Inputs& x) { return permute(x[0], {2, 0, 1}); }},
      {"narrow", {{4, 5}}, [](const Inputs& x) { return narrow(x[0], 1, 1, 3); }},
      {"slice_step", {{7, 3}}, [](const Inputs& x) { return slice(x[0], 0, 1, 7, 2); }},
      {"slice_negative", {{3, 8}}, [](const Inputs& x) { return slice(x[0], -1, -6, -1, 3); }},
      {"select", {{3, 4}}, [](const Inputs& x) { return select(x[0], 1, 2); }},
      {"select_negative", {{3, 4, 2}}, [](const Inputs& x) { return select(x[0], 0, -1); }},
      {"unsqueeze", {{3, 4}}, [](const Inputs& x) { return unsqueeze(x[0], 1); }},
      {"squeeze", {{3, 1, 4}}, [](const Inputs& x) { return squeeze(x[0], 1); }},
      {"squeeze_noop", {{3, 4}}, [](const Inputs& x) { return squeeze(x[0], 0); }},
      {"expand_reduce", {{3, 1}}, [](const Inputs& x) { return sum(expand(x[0], {2, 3, 4}), {0}); }},
      {"expand", {{1, 4}}, [](const Inputs& x) { return expand(x[0], {3, -1}); }},
      {"contiguous", {{3, 4}}, [](const Inputs& x) { return contiguous(transpose(x[0], 0, 1)); }},
      {"to_float32_and_back", {{3, 4}},
       [](const Inputs& x) { return to(to(x[0], DType::Float32) * 2.0, DType::Float64); },
       Init::Normal, loose(1e-2, 1e-4, 1e-4)},
      {"view_of_view_mul", {{4, 6}, {4, 5}},  // [3, 4] * [3, 4], both strided
       [](const Inputs& x) { return slice(transpose(x[0], 0, 1), 0, 0, 6, 2) * transpose(narrow(x[1], 1, 1, 3), 0, 1); }},
      // ---- matrix products ----
      {"matmul_2d", {{3, 4}, {4, 5}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_batched", {{2, 3, 4}, {2, 4, 5}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_broadcast_batch", {{2, 1, 3, 4}, {3, 4, 2}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_batched_x_2d", {{2, 3, 4}, {4, 5}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_vec_mat", {{4}, {4, 5}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_mat_vec", {{3, 4}, {4}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_vec_vec", {{4}, {4}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_vec_batched", {{4}, {2, 4, 3}}, [](const Inputs& x) { return matmul(x[0], x[1]); }},
      {"matmul_transposed", {{4, 3}, {5, 4}},
       [](const Inputs& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); }},
      {"linear", {{5, 4}, {3, 4}, {3}}, [](const Inputs& x) { return linear(x[0], x[1], x[2]); }},
      {"linear_no_bias", {{5, 4}, {3, 4}}, [](const Inputs& x) { return linear(x[0], x[1]); }},
      {"linear_3d", {{2, 3, 4}, {5, 4}, {5}}, [](const Inputs& x) { return linear(x[0], x[1], x[2]); }},
      {"linear_1d", {{4}, {3, 4}, {3}}, [](const Inputs& x) { return linear(x[0], x[1], x[2]); }},
      {"linear_noncontig", {{4, 5}, {3, 4}}, [](const Inputs& x) { return linear(transpose(x[0], 0, 1), x[1]); }},
      // ---- neural-network functions ----
      {"softmax_last", {{3, 5}}, [](const Inputs& x) { return softmax(x[0], -1); }},
      {"softmax_dim0", {{3, 5}}, [](const Inputs& x) { return softmax(x[0], 0); }},
      {"softmax_mid", {{2, 3, 4}}, [](const Inputs& x) { return softmax(x[0], 1); }},
      {"log_softmax_last", {{3, 5}}, [](const Inputs& x) { return log_softmax(x[0], 1); }},
      {"log_softmax_mid", {{2, 3, 4}}, [](const Inputs& x) { return log_softmax(x[0], -2); }},
      {"cross_entropy", {{4, 5}}, [=](const Inputs& x) { return cross_entropy(x[0], targets4); }},
      {"cross_entropy_noncontig", {{5, 4}},
       [=](const Inputs& x) { return cross_entropy(transpose(x[0], 0, 1), targets4); }},
      {"dropout", {{4, 5}},
       [](const Inputs& x) {
         Generator gen(42);  // reseeded on every evaluation: the mask stays fixed
         return dropout(x[0], 0.4, true, &gen);
       }},
      {"dropout_eval", {{4, 5}}, [](const Inputs& x) { return dropout(x[0], 0.4, false) * 1.0; }},
      // ---- joining and indexing ----
      {"cat_dim0", {{2, 3}, {1, 3}, {4, 3}}, [](const Inputs& x) { return cat({x[0], x[1], x[2]}, 0); }},
      {"cat_dim1", {{2, 3}, {2, 1}}, [](const Inputs& x) { return cat({x[0], x[1]}, -1); }},
      {"cat_with_constant", {{2, 3}},
       [](const Inputs& x) { return cat({x[0], ones({2, 2}, DType::Float64)}, 1); }},
      {"stack_dim0", {{2, 3}, {2, 3}}, [](const Inputs& x) { return stack({x[0], x[1]}, 0); }},
      {"stack_last", {{2, 3}, {2, 3}, {2, 3}}, [](const Inputs& x) { return stack({x[0], x[1], x[2]}, -1); }},
      {"index_select_repeated", {{4, 3}},
       [](const Inputs& x) { return index_select(x[0], 0, i64({2, 0, 2, 2, 3})); }},
      {"index_select_dim1", {{2, 4}}, [](const Inputs& x) { return index_select(x[0], 1, i64({3, 1})); }},
      // ---- transformer ops (test_transformer_ops.cpp checks them in more shapes) ----
      {"layer_norm", {{3, 5}, {5}, {5}}, [](const Inputs& x) { return layer_norm(x[0], x[1], x[2]); }},
      {"embedding_repeated", {{4, 3}}, [](const Inputs& x) { return embedding(x[0], from_vector(Vi{1, 3, 1, 0, 1, 1}, {2, 3})); }},
      {"causal_softmax", {{2, 3, 4}}, [](const Inputs& x) { return causal_softmax(x[0], 0.5); }},
      {"causal_attention", {{1, 2, 3, 4}, {1, 2, 3, 4}, {1, 2, 3, 4}},
       [](const Inputs& x) { return causal_attention(x[0], x[1], x[2]); }},
      // ---- compositions ----
      {"mlp_cross_entropy", {{4, 6}, {5, 6}, {5}, {3, 5}, {3}},
       [](const Inputs& x) {
         Tensor h = gelu(linear(x[0], x[1], x[2]));
         return cross_entropy(linear(h, x[3], x[4]), i64({0, 2, 1, 2}));
       }},
      {"attention_like", {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}},
       [](const Inputs& x) {
         Tensor att = softmax(matmul(x[0], transpose(x[1], -1, -2)) / 2.0, -1);
         return matmul(att, x[2]);
       }},
      {"layernorm_like", {{3, 5}},
       [](const Inputs& x) {
         Tensor mu = mean(x[0], {-1}, true);
         Tensor xc = x[0] - mu;
         return xc / sqrt(mean(xc * xc, {-1}, true) + 1e-5);
       }},
  };
}

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const GradCase& c, std::ostream* os) { *os << c.name; }

class GradcheckOp : public ::testing::TestWithParam<GradCase> {};

TEST_P(GradcheckOp, MatchesCentralDifferences) {
  const GradCase& c = GetParam();
  Generator gen(1234);
  Inputs inputs;
  for (const Shape& s : c.shapes) inputs.push_back(make_input(s, c.init, gen));
  auto res = gradcheck(c.fn, inputs, c.opts);
  EXPECT_TRUE(res.ok) << c.name << ": " << res.report;
  int64_t total = 0;
  for (const Shape& s : c.shapes) total += shape_numel(s);
  EXPECT_EQ(res.checked, total);
}

INSTANTIATE_TEST_SUITE_P(Ops, GradcheckOp, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<GradCase>& info) { return info.param.name; });

// ---- the checker itself ----

// y = 2x with a deliberately wrong backward (3g instead of 2g).
Tensor wrong_double(const Tensor& x) {
  return autograd::record("WrongDoubleBackward", ops::mul_scalar(x, 2.0), {x},
                          [](const Tensor& g, autograd::InputGrads& gi) { gi[0] = ops::mul_scalar(g, 3.0); });
}

// y = x * w with the gradient of the second input sent to the wrong element order.
Tensor wrong_transposed_mul(const Tensor& x, const Tensor& w) {
  return autograd::record("WrongMulBackward", ops::mul(x, w), {x, w},
                          [xs = x.detach(), ws = w.detach()](const Tensor& g, autograd::InputGrads& gi) {
                            if (gi.needs(0)) gi[0] = ops::mul(g, ws);
                            if (gi.needs(1)) gi[1] = ops::reshape(ops::contiguous(ops::transpose(ops::mul(g, xs), 0, 1)), {2, 2});
                          });
}

TEST(Gradcheck, DetectsWrongBackward) {
  Generator gen(7);
  Tensor x = randn({3, 2}, DType::Float64, &gen).set_requires_grad(true);
  auto res = gradcheck([](const Inputs& in) { return wrong_double(in[0]); }, {x});
  EXPECT_FALSE(res.ok);
  // The worst element: analytic = 3 r_i, numeric = 2 r_i.
  EXPECT_NE(res.report.find("input 0 [3, 2]"), std::string::npos) << res.report;
  EXPECT_NE(res.report.find("analytic"), std::string::npos) << res.report;
  EXPECT_NE(res.report.find("numeric"), std::string::npos) << res.report;
  EXPECT_GT(res.max_rel_err, 0.4);
  EXPECT_LT(res.max_rel_err, 0.6);  // |3 - 2| / 2
  // The same op with the right backward passes.
  auto good = gradcheck([](const Inputs& in) { return in[0] * 2.0; }, {x});
  EXPECT_TRUE(good.ok) << good.report;
  EXPECT_LT(good.max_abs_err, 1e-8);
}

TEST(Gradcheck, DetectsTransposedGradient) {
  Generator gen(8);
  Tensor x = randn({2, 2}, DType::Float64, &gen).set_requires_grad(true);
  Tensor w = randn({2, 2}, DType::Float64, &gen).set_requires_grad(true);
  auto res = gradcheck([](const Inputs& in) { return wrong_transposed_mul(in[0], in[1]); }, {x, w});
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.report.find("input 1"), std::string::npos) << res.report;
  // With w held constant only the (correct) gradient of x is checked.
  Tensor wc = w.detach();
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return wrong_transposed_mul(in[0], in[1]); }, {x, wc}).ok);
}

TEST(Gradcheck, DetectsMissingGraph) {
  // fn computes under NoGradGuard: the analytic gradient is zero, the numeric one is not.
  Tensor x = ones({3}, DType::Float64).set_requires_grad(true);
  auto res = gradcheck(
      [](const Inputs& in) {
        NoGradGuard ng;
        return in[0] * in[0];
      },
      {x});
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.report.find("analytic 0"), std::string::npos) << res.report;
}

TEST(Gradcheck, RestoresInputsAndGrads) {
  Tensor x = from_vector(std::vector<double>{1, 2, 3}).set_requires_grad(true);
  x.mutable_grad() = full({3}, 5.0, DType::Float64);
  auto res = gradcheck([](const Inputs& in) { return exp(in[0]); }, {x});
  EXPECT_TRUE(res.ok) << res.report;
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 5, 5}));
}

// An input with a zero-size dim is contiguous (tensor.cpp) and has nothing to check: accepted.
TEST(Gradcheck, AcceptsInputsWithNoElements) {
  Tensor x = zeros({2, 0}, DType::Float64).set_requires_grad(true);
  Tensor y = from_vector(std::vector<double>{1, 2}).set_requires_grad(true);
  auto res = gradcheck([](const Inputs& in) { return sum(in[0]) + sum(exp(in[1])); }, {x, y});
  EXPECT_TRUE(res.ok) << res.report;
}

TEST(Gradcheck, RejectsBadInputs) {
  auto fn = [](const Inputs& in) { return in[0] * 2.0; };
  Tensor f32 = ones({2, 3}).set_requires_grad(true);
  try {
    gradcheck(fn, {f32});
    FAIL() << "float32 input accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("float64"), std::string::npos) << e.what();
  }
  Tensor base = ones({2, 3}, DType::Float64);
  Tensor t = transpose(base, 0, 1).set_requires_grad(true);
  try {
    gradcheck(fn, {t});
    FAIL() << "non-contiguous input accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not contiguous"), std::string::npos) << e.what();
  }
  Tensor no_grad = ones({2}, DType::Float64);
  EXPECT_THROW(gradcheck(fn, {no_grad}), Error);
}

}  // namespace
}  // namespace minipipe
