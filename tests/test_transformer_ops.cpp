// Tests of the transformer ops (tensor/cpu/{layernorm,embedding,attention}.cpp and
// autograd/ops_transformer.cpp): float64 gradient checks (one table entry per case), forwards
// against composed reference ops, the causal mask (no gradient from the future), determinism
// across thread counts, and the errors users can cause.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "nn/attention.h"
#include "nn/embedding.h"
#include "tensor/threads.h"

namespace minipipe {
namespace {

using autograd::GradcheckOptions;
using autograd::gradcheck;
using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

struct GradCase {
  std::string name;
  std::vector<Shape> shapes;  // one float64 N(0, 1) input requiring grad per shape
  Fn fn;
  GradcheckOptions opts = {};
};

Tensor i64(std::vector<int64_t> v, Shape s = {}) { return from_vector(v, std::move(s)); }

std::vector<GradCase> cases() {
  const Tensor tokens = i64({3, 1, 3, 0, 6, 3}, {2, 3});  // repeats: the scatter-add must sum them
  return {
      {"layer_norm", {{2, 3, 5}, {5}, {5}}, [](const Inputs& x) { return layer_norm(x[0], x[1], x[2]); }},
      {"layer_norm_rows", {{7, 4}, {4}, {4}}, [](const Inputs& x) { return layer_norm(x[0], x[1], x[2], 1e-3); }},
      // A non-contiguous input: the kernel's contiguous() copy must route the gradient back.
      {"layer_norm_transposed", {{4, 3}, {4}, {4}},
       [](const Inputs& x) { return layer_norm(transpose(x[0], 0, 1), x[1], x[2]); }},
      {"embedding", {{7, 4}}, [tokens](const Inputs& x) { return embedding(x[0], tokens); }},
      {"embedding_then_mul", {{7, 4}, {2, 3, 4}}, [tokens](const Inputs& x) { return embedding(x[0], tokens) * x[1]; }},
      {"causal_softmax_square", {{2, 3, 4, 4}}, [](const Inputs& x) { return causal_softmax(x[0], 0.7); }},
      {"causal_softmax_fewer_queries", {{2, 3, 6}}, [](const Inputs& x) { return causal_softmax(x[0], 1.3); }},
      {"causal_attention", {{2, 2, 5, 3}, {2, 2, 5, 3}, {2, 2, 5, 3}},
       [](const Inputs& x) { return causal_attention(x[0], x[1], x[2]); }},
      // Dropout on the attention weights: the generator is reseeded on every call, so the mask
      // is the same for the analytic and every numeric evaluation.
      {"causal_attention_dropout", {{1, 2, 4, 3}, {1, 2, 4, 3}, {1, 2, 4, 3}},
       [](const Inputs& x) {
         Generator gen(7);
         return causal_attention(x[0], x[1], x[2], 0.3, true, &gen);
       }},
      {"causal_attention_reference", {{2, 2, 5, 3}, {2, 2, 5, 3}, {2, 2, 5, 3}},
       [](const Inputs& x) { return causal_attention_reference(x[0], x[1], x[2]); }},
      {"causal_self_attention", {{2, 5, 12}}, [](const Inputs& x) { return causal_self_attention(x[0], 2); }},
      {"causal_self_attention_dropout", {{2, 4, 18}},
       [](const Inputs& x) {
         Generator gen(7);
         return causal_self_attention(x[0], 3, 0.25, true, &gen);
       }},
      // q, k, v as strided views of one [B, T, 3C] tensor, as CausalSelfAttention makes them.
      {"causal_attention_from_fused_qkv", {{2, 4, 12}},
       [](const Inputs& x) {
         auto head = [&](int64_t i) { return transpose(view(narrow(x[0], 2, 4 * i, 4), {2, 4, 2, 2}), 1, 2); };
         return causal_attention(head(0), head(1), head(2));
       }},
  };
}

class TransformerGradcheck : public ::testing::TestWithParam<GradCase> {};

TEST_P(TransformerGradcheck, MatchesCentralDifferences) {
  const GradCase& c = GetParam();
  Generator gen(1234);
  Inputs inputs;
  for (const Shape& s : c.shapes) {
    Tensor t = randn(s, DType::Float64, &gen);
    t.set_requires_grad(true);
    inputs.push_back(t);
  }
  auto res = gradcheck(c.fn, inputs, c.opts);
  EXPECT_TRUE(res.ok) << c.name << ": " << res.report;
  EXPECT_GT(res.checked, 0);
}

// Test names in ctest show the case name, not gtest's byte dump of the struct.
void PrintTo(const GradCase& c, std::ostream* os) { *os << c.name; }

INSTANTIATE_TEST_SUITE_P(Ops, TransformerGradcheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<GradCase>& info) { return info.param.name; });

// max |a - b| over all elements.
double max_diff(const Tensor& a, const Tensor& b) {
  return ops::max(ops::abs(ops::sub(ops::to(a, DType::Float64), ops::to(b, DType::Float64)))).item();
}

TEST(LayerNorm, ForwardMatchesComposedOps) {
  Generator gen(1);
  Tensor x = ops::add_scalar(ops::mul_scalar(randn({3, 5, 16}, DType::Float64, &gen), 3.0), 2.0);
  Tensor w = randn({16}, DType::Float64, &gen), b = randn({16}, DType::Float64, &gen);
  auto [out, mean, rstd] = ops::layernorm(x, w, b, 1e-5);
  Tensor mu = ops::mean(x, {-1}, true);
  Tensor xc = ops::sub(x, mu);
  Tensor var = ops::mean(ops::mul(xc, xc), {-1}, true);
  Tensor ref = ops::add(ops::mul(ops::div(xc, ops::sqrt(ops::add_scalar(var, 1e-5))), w), b);
  EXPECT_LT(max_diff(out, ref), 1e-12);
  EXPECT_EQ(mean.sizes(), Shape({15}));
  EXPECT_LT(max_diff(mean, ops::reshape(mu, {15})), 1e-12);
  // With w = 1 and b = 0 every output row has mean 0 and (biased) variance v / (v + eps), v the
  // input row's variance: 1 up to eps / v (x's rows have v around 9 here).
  auto [norm, m2, r2] = ops::layernorm(x, ones({16}, DType::Float64), zeros({16}, DType::Float64), 1e-5);
  EXPECT_LT(ops::max(ops::abs(ops::mean(norm, {-1}))).item(), 1e-12);
  const Tensor norm_var = ops::mean(ops::mul(norm, norm), {-1});  // the mean is 0: E[y^2]
  const Tensor want_var = ops::div(var, ops::add_scalar(var, 1e-5));
  EXPECT_LT(max_diff(norm_var, ops::reshape(want_var, {3, 5})), 1e-12);
  EXPECT_LT(ops::max(ops::abs(ops::add_scalar(norm_var, -1.0))).item(), 1e-5);
}

TEST(LayerNorm, BackwardIsTheSameOnOneAndTwoThreads) {
  Generator gen(2);
  Tensor x = randn({256, 128}, {}, &gen), w = randn({128}, {}, &gen), g = randn({256, 128}, {}, &gen);
  auto [out, mean, rstd] = ops::layernorm(x, w, zeros({128}), 1e-5);
  const int before = get_num_threads();
  set_num_threads(1);
  auto [dx1, dw1, db1] = ops::layernorm_backward(g, x, w, mean, rstd);
  set_num_threads(2);
  auto [dx2, dw2, db2] = ops::layernorm_backward(g, x, w, mean, rstd);
  set_num_threads(before);
  EXPECT_EQ(dx1.to_vector<float>(), dx2.to_vector<float>());
  EXPECT_EQ(dw1.to_vector<float>(), dw2.to_vector<float>());
  EXPECT_EQ(db1.to_vector<float>(), db2.to_vector<float>());
}

TEST(LayerNorm, ErrorsNameTheShapes) {
  Tensor x = zeros({2, 8});
  EXPECT_THROW(ops::layernorm(x, ones({7}), zeros({8}), 1e-5), Error);
  try {
    layer_norm(x, ones({8}), zeros({6}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[6]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::layernorm(x, ones({8}), zeros({8}), 0.0), Error);
}

TEST(Embedding, ForwardLooksUpRowsAndBackwardSumsRepeats) {
  Tensor w = from_vector(std::vector<float>{0, 1, 10, 11, 20, 21}, {3, 2});
  Tensor idx = i64({2, 0, 2}, {1, 3});
  Tensor out = ops::embedding(w, idx);
  EXPECT_EQ(out.sizes(), Shape({1, 3, 2}));
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{20, 21, 0, 1, 20, 21}));
  Tensor g = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {1, 3, 2});
  Tensor dw = ops::embedding_backward(g, idx, 3);
  EXPECT_EQ(dw.to_vector<float>(), (std::vector<float>{3, 4, 0, 0, 6, 8}));
}

TEST(Embedding, BackwardMatchesIndexAddAndIgnoresThreadCount) {
  Generator gen(3);
  const int64_t V = 50, C = 96, N = 4096;
  std::vector<int64_t> ids(N);
  for (auto& i : ids) i = static_cast<int64_t>(gen.below(V));
  Tensor idx = from_vector(ids), g = randn({N, C}, {}, &gen);
  const int before = get_num_threads();
  set_num_threads(1);
  Tensor d1 = ops::embedding_backward(g, idx, V);
  set_num_threads(2);
  Tensor d2 = ops::embedding_backward(g, idx, V);
  set_num_threads(before);
  EXPECT_EQ(d1.to_vector<float>(), d2.to_vector<float>());
  // Same order of additions as index_add: bit-for-bit equal.
  EXPECT_EQ(d1.to_vector<float>(), ops::index_add({V, C}, 0, idx, g).to_vector<float>());
}

TEST(Embedding, OutOfRangeIndexNamesValueAndTableSize) {
  try {
    ops::embedding(zeros({5, 2}), i64({1, 5}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("index 5"), std::string::npos) << m;
    EXPECT_NE(m.find("5 rows"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::embedding(zeros({5, 2}), from_vector(std::vector<float>{1.0f})), Error);
}

// Float token ids are checked before they are cast: NaN or a value outside int64's range would
// make the cast itself undefined behaviour.
TEST(Embedding, FloatIdsThatAreNotTokensAreAnError) {
  const std::vector<std::pair<double, std::string>> bad = {
      {std::nan(""), "nan"}, {1e30, "1e+30"}, {-0x1p64, "-1.84467e+19"}, {INFINITY, "inf"}, {2.5, "2.5"}};
  for (const auto& [v, shown] : bad) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      try {
        nn::to_token_index(ops::to(from_vector(std::vector<double>{1.0, v}), dt));
        ADD_FAILURE() << "expected an error for " << shown;
      } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("token index"), std::string::npos) << m;
        EXPECT_NE(m.find(shown), std::string::npos) << m;
        EXPECT_NE(m.find("position 1"), std::string::npos) << m;
      }
    }
  }
  EXPECT_EQ(nn::to_token_index(from_vector(std::vector<float>{3.0f, 0.0f})).to_vector<int64_t>(),
            (std::vector<int64_t>{3, 0}));
}

TEST(CausalSoftmax, MatchesMaskedSoftmaxAndZerosTheFuture) {
  Generator gen(4);
  Tensor att = randn({2, 3, 6, 6}, DType::Float64, &gen);
  Tensor y = ops::causal_softmax(att, 0.5);
  Tensor pos = arange(6, DType::Float64);
  Tensor mask = ops::gt(ops::unsqueeze(pos, 0), ops::unsqueeze(pos, 1));
  Tensor ref = ops::softmax(ops::masked_fill(ops::mul_scalar(att, 0.5), mask, -INFINITY), -1);
  EXPECT_LT(max_diff(y, ref), 1e-14);
  const auto v = y.to_vector<double>();
  for (int64_t r = 0; r < 36; ++r)
    for (int64_t j = r % 6 + 1; j < 6; ++j) EXPECT_EQ(v[r * 6 + j], 0.0) << "row " << r << " key " << j;
  EXPECT_THROW(ops::causal_softmax(zeros({5, 4}), 1.0), Error);  // more queries than keys
}

// float32 runs the vectorised exp / tanh of tensor/cpu/fast_math.h, float64 libm's: they agree
// to a few float32 ulps.
TEST(FastMath, Float32CausalSoftmaxAndGeluMatchFloat64) {
  Generator gen(6);
  Tensor att = ops::mul_scalar(randn({4, 64, 64}, DType::Float64, &gen), 10.0);
  Tensor y64 = ops::causal_softmax(att, 0.3);
  Tensor y32 = ops::causal_softmax(ops::to(att, DType::Float32), 0.3);
  EXPECT_LT(max_diff(y32, y64), 3e-7);
  Tensor x = ops::mul_scalar(randn({100000}, DType::Float64, &gen), 4.0);
  EXPECT_LT(max_diff(ops::gelu(ops::to(x, DType::Float32)), ops::gelu(x)), 1e-5);  // |gelu(x)| up to ~16
  // gelu' = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2): tanh's 3e-7 near saturation, times up to ~10.
  Tensor g = randn({100000}, DType::Float64, &gen);
  EXPECT_LT(max_diff(ops::gelu_backward(ops::to(g, DType::Float32), ops::to(x, DType::Float32)), ops::gelu_backward(g, x)),
            3e-5);
}

TEST(CausalAttention, FusedMatchesReferenceForwardAndBackward) {
  Generator gen(5);
  Inputs a, b;
  for (int i = 0; i < 3; ++i) {
    Tensor t = randn({2, 4, 16, 8}, {}, &gen);
    a.push_back(t.detach().set_requires_grad(true));
    b.push_back(ops::clone(t).set_requires_grad(true));
  }
  Tensor ya = causal_attention(a[0], a[1], a[2]);
  Tensor yb = causal_attention_reference(b[0], b[1], b[2]);
  EXPECT_LT(max_diff(ya, yb), 1e-5);
  Tensor r = randn(ya.sizes(), {}, &gen);
  sum(ya * r).backward();
  sum(yb * r).backward();
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_diff(a[i].grad(), b[i].grad()), 1e-4) << "input " << i;
}

// Big enough for the threaded paths (B·H·T·hd = 2^18 for the fused attention, rows × keys >= the
// parallel grain for the causal softmax): one (batch, head) or one row per task, so 1 and 2
// threads give the same bits — the promise docs/gpt.md makes. Under ctest the whole file also
// runs with OMP_NUM_THREADS=2 (the threads2.* tests).
TEST(CausalAttention, FusedForwardAndBackwardAreTheSameOnOneAndTwoThreads) {
  const int64_t B = 2, H = 4, T = 128, hd = 128, C = H * hd;
  Generator gen(17);
  Tensor qkv = randn({B, T, 3 * C}, {}, &gen), dout = randn({B, T, C}, {}, &gen);
  Tensor mask = ops::dropout_mask(zeros({B, H, T, T}), 0.1, gen);
  Tensor scores = ops::mul_scalar(randn({8, 64, 64}, {}, &gen), 3.0);
  const int before = get_num_threads();
  std::vector<std::vector<float>> results[2];
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    auto& r = results[threads - 1];
    for (const Tensor& m : {Tensor(), mask}) {
      auto [out, att] = ops::attention_forward(qkv, H, m);
      r.push_back(out.to_vector<float>());
      r.push_back(att.to_vector<float>());
      r.push_back(ops::attention_backward(dout, qkv, att, H, m).to_vector<float>());
    }
    Tensor y = ops::causal_softmax(scores, 0.125);
    r.push_back(y.to_vector<float>());
    r.push_back(ops::causal_softmax_backward(scores, y, 0.125).to_vector<float>());
  }
  set_num_threads(before);
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i) EXPECT_TRUE(results[0][i] == results[1][i]) << "result " << i;
  // And they are right: the float64 kernels agree.
  auto [out64, att64] = ops::attention_forward(ops::to(qkv, DType::Float64), H);
  EXPECT_LT(max_diff(from_vector(results[1][0], {B, T, C}), out64), 1e-5);
}

// Backpropagate from output position t only: nothing at positions > t may receive gradient, for
// q, k or v, in the fused path and in the reference, with and without dropout.
TEST(CausalAttention, NoGradientFlowsFromTheFuture) {
  const int64_t B = 2, H = 2, T = 7, hd = 4;
  for (int variant = 0; variant < 3; ++variant) {
    for (int64_t t = 0; t < T; ++t) {
      Generator gen(100 + t);
      Inputs x;
      for (int i = 0; i < 3; ++i) x.push_back(randn({B, H, T, hd}, DType::Float64, &gen).set_requires_grad(true));
      Generator drop(9);
      Tensor y = variant == 0   ? causal_attention(x[0], x[1], x[2])
                 : variant == 1 ? causal_attention(x[0], x[1], x[2], 0.2, true, &drop)
                                : causal_attention_reference(x[0], x[1], x[2]);
      Tensor g = zeros(y.sizes(), DType::Float64);
      ops::copy_(ops::select(g, 2, t), randn({B, H, hd}, DType::Float64, &gen));
      y.backward(g);
      for (int i = 0; i < 3; ++i) {
        Tensor grad = x[i].grad();
        ASSERT_TRUE(grad.defined());
        if (t + 1 < T) {  // the future
          Tensor future = ops::narrow(grad, 2, t + 1, T - t - 1);
          EXPECT_EQ(ops::max(ops::abs(future)).item(), 0.0)
              << "variant " << variant << " input " << i << " got gradient at positions > " << t;
        }
        // ... while the present does receive some: v at t always (without dropout), q at t once
        // there are two keys to weigh (a one-key softmax is constant).
        if (variant != 1 && (i == 2 || (i == 0 && t > 0))) {
          EXPECT_GT(ops::max(ops::abs(ops::select(grad, 2, t))).item(), 0.0) << "variant " << variant << " input " << i;
        }
      }
    }
  }
}

// The one-node fused attention against the composed path (heads as views, causal_attention,
// heads merged by reshape), as nn::CausalSelfAttention runs them: same outputs and gradients,
// with dropout too (the same seed and site draw the same mask).
TEST(CausalSelfAttention, FusedMatchesComposed) {
  for (double p : {0.0, 0.2}) {
    nn::CausalSelfAttention fused(32, 4, p, DType::Float32), composed(32, 4, p, DType::Float32);
    composed.fused = false;
    // Two contexts with one seed: both modules draw the same counter-based masks.
    fused.set_random_context(std::make_shared<RandomContext>(5));
    composed.set_random_context(std::make_shared<RandomContext>(5));
    for (auto& [name, t] : composed.named_parameters())
      for (auto& [n2, u] : fused.named_parameters())
        if (n2 == name) ops::copy_(t, u);
    Generator gx(3);
    Tensor x = randn({3, p == 0 ? 128 : 10, 32}, {}, &gx);  // a full GPT context, and a short one with dropout
    Tensor xa = ops::clone(x).set_requires_grad(true), xb = ops::clone(x).set_requires_grad(true);
    Tensor ya = fused.forward(xa), yb = composed.forward(xb);
    EXPECT_LT(max_diff(ya, yb), 1e-6) << "p=" << p;
    Tensor r = randn(ya.sizes(), {}, &gx);
    sum(ya * r).backward();
    sum(yb * r).backward();
    EXPECT_LT(max_diff(xa.grad(), xb.grad()), 1e-5) << "p=" << p;
    EXPECT_LT(max_diff(fused.qkv->weight.grad(), composed.qkv->weight.grad()), 1e-5) << "p=" << p;
  }
}

TEST(CausalSelfAttention, NoGradientFlowsFromTheFuture) {
  const int64_t B = 2, T = 6, C = 8, H = 2;
  for (int64_t t = 0; t < T; ++t) {
    Generator gen(200 + t);
    Tensor qkv = randn({B, T, 3 * C}, DType::Float64, &gen).set_requires_grad(true);
    Tensor y = causal_self_attention(qkv, H);
    Tensor g = zeros(y.sizes(), DType::Float64);
    ops::copy_(ops::select(g, 1, t), randn({B, C}, DType::Float64, &gen));
    y.backward(g);
    if (t + 1 < T) {
      EXPECT_EQ(ops::max(ops::abs(ops::narrow(qkv.grad(), 1, t + 1, T - t - 1))).item(), 0.0) << "t=" << t;
    }
    EXPECT_GT(ops::max(ops::abs(ops::select(qkv.grad(), 1, t))).item(), 0.0) << "t=" << t;
  }
  EXPECT_THROW(causal_self_attention(zeros({1, 4, 12}), 5), Error);  // 5 heads do not divide C = 4
}

TEST(CausalAttention, ErrorsNameTheShapes) {
  try {
    causal_attention(zeros({1, 2, 4, 8}), zeros({1, 2, 4, 8}), zeros({1, 2, 5, 8}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 2, 5, 8]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace minipipe
