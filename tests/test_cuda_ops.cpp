// Every CUDA kernel against its CPU reference: one table entry per case (adding an op is one
// entry): the inputs are made on the CPU (float32, seeded), the op runs on the CPU and on cuda:0,
// and every output must agree within atol + rtol |cpu| (llm.c's rule). Without a device (the CI
// machines) each case skips itself; a machine with a GPU runs the table as it is.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe {
namespace {

// How one input is made: normal floats, positive floats (log, sqrt, div), or int64 indices in
// [0, high).
struct In {
  Shape shape;
  enum Kind { Normal, Positive, Index } kind = Normal;
  int64_t high = 0;
};
In normal(Shape s) { return {std::move(s), In::Normal, 0}; }
In positive(Shape s) { return {std::move(s), In::Positive, 0}; }
In index(Shape s, int64_t high) { return {std::move(s), In::Index, high}; }

using Ts = std::vector<Tensor>;

struct CudaCase {
  std::string name;
  std::vector<In> inputs;
  std::function<Ts(const Ts&)> run;  // the same code on either device's inputs
  double atol = 1e-5, rtol = 1e-4;
};

// gtest names a case by its name, not its bytes.
void PrintTo(const CudaCase& c, std::ostream* os) { *os << c.name; }

Tensor make_input(const In& in, Generator& gen) {
  switch (in.kind) {
    case In::Normal: return randn(in.shape, DType::Float32, &gen);
    case In::Positive: return uniform(in.shape, 0.5, 2.0, DType::Float32, &gen);
    case In::Index: {
      std::vector<int64_t> v(static_cast<size_t>(shape_numel(in.shape)));
      for (auto& x : v) x = static_cast<int64_t>(gen.below(static_cast<uint64_t>(in.high)));
      return from_vector(v, in.shape);
    }
  }
  return {};
}

Ts one(Tensor t) { return {std::move(t)}; }

std::vector<CudaCase> cases() {
  using namespace ops;
  const CounterKey key{0x1234abcdULL, 7, 3};
  return {
      // ---- elementwise, with broadcasting and strided views ----
      {"add_broadcast", {normal({4, 1, 5}), normal({3, 5})}, [](const Ts& x) { return one(add(x[0], x[1])); }},
      {"sub", {normal({7, 9}), normal({7, 9})}, [](const Ts& x) { return one(sub(x[0], x[1])); }},
      {"mul_row", {normal({6, 33}), normal({33})}, [](const Ts& x) { return one(mul(x[0], x[1])); }},
      {"div", {normal({5, 8}), positive({5, 8})}, [](const Ts& x) { return one(div(x[0], x[1])); }},
      {"maximum", {normal({1000}), normal({1000})}, [](const Ts& x) { return one(maximum(x[0], x[1])); }},
      {"add_transposed", {normal({16, 24}), normal({24, 16})},
       [](const Ts& x) { return one(add(x[0], transpose(x[1], 0, 1))); }},
      {"add_scalar", {normal({1027})}, [](const Ts& x) { return one(add_scalar(x[0], 0.5)); }},
      {"mul_scalar_offset", {normal({1029})}, [](const Ts& x) { return one(mul_scalar(narrow(x[0], 0, 1, 1027), 3)); }},
      {"pow2", {normal({64})}, [](const Ts& x) { return one(pow_scalar(x[0], 2)); }},
      {"pow3", {positive({64})}, [](const Ts& x) { return one(pow_scalar(x[0], 3)); }},
      {"neg", {normal({50})}, [](const Ts& x) { return one(neg(x[0])); }},
      {"exp", {normal({50})}, [](const Ts& x) { return one(exp(x[0])); }},
      {"log", {positive({50})}, [](const Ts& x) { return one(log(x[0])); }},
      {"sqrt", {positive({50})}, [](const Ts& x) { return one(sqrt(x[0])); }},
      {"abs", {normal({50})}, [](const Ts& x) { return one(abs(x[0])); }},
      {"tanh", {normal({50})}, [](const Ts& x) { return one(tanh(x[0])); }},
      {"sigmoid", {normal({50})}, [](const Ts& x) { return one(sigmoid(x[0])); }},
      {"sigmoid_wide", {normal({300})}, [](const Ts& x) { return one(sigmoid(mul_scalar(x[0], 40.0))); }, 1e-30, 1e-4},
      // Inputs in [-94, -23.5]: below -88.7, 1 / (1 + e^-x) gave 0 where the value is a subnormal.
      {"sigmoid_underflow", {positive({64})}, [](const Ts& x) { return one(sigmoid(mul_scalar(x[0], -47.0))); }, 1e-44,
       1e-4},
      {"relu", {normal({50})}, [](const Ts& x) { return one(relu(x[0])); }},
      {"gelu", {normal({4099})}, [](const Ts& x) { return one(gelu(x[0])); }},
      // Negative inputs where 0.5 x (1 + tanh u) would cancel: relative error, not just absolute.
      {"gelu_negative_tail", {positive({64})}, [](const Ts& x) { return one(gelu(mul_scalar(x[0], -2.5))); }, 1e-12, 1e-3},
      {"relu_backward", {normal({50}), normal({50})}, [](const Ts& x) { return one(relu_backward(x[0], x[1])); }},
      {"gelu_backward", {normal({50}), normal({50})}, [](const Ts& x) { return one(gelu_backward(x[0], x[1])); }},
      {"tanh_backward", {normal({50}), normal({50})}, [](const Ts& x) { return one(tanh_backward(x[0], x[1])); }},
      {"sigmoid_backward", {normal({50}), normal({50})},
       [](const Ts& x) { return one(sigmoid_backward(x[0], x[1])); }},
      {"compare", {normal({3, 4}), normal({4})},
       [](const Ts& x) { return Ts{lt(x[0], x[1]), ge(x[0], x[1]), eq(x[0], x[0]), ne(x[0], x[1])}; }},
      {"compare_int64", {index({20}, 5), index({20}, 5)}, [](const Ts& x) { return Ts{eq(x[0], x[1]), add(x[0], x[1])}; }},
      {"where", {normal({4, 5}), normal({4, 5}), normal({5})},
       [](const Ts& x) { return one(where(gt(x[0], zeros({}, x[0].options())), x[1], x[2])); }},
      {"add_inplace", {normal({6, 7}), normal({7})}, [](const Ts& x) {
         Tensor a = clone(x[0]);
         add_(a, x[1], -0.25);
         return one(a);
       }},
      {"mul_scalar_inplace", {normal({6, 7})}, [](const Ts& x) {
         Tensor a = clone(x[0]);
         mul_scalar_(a, 1.5);
         return one(a);
       }},
      // ---- copies ----
      {"contiguous_permute", {normal({3, 4, 5})}, [](const Ts& x) { return one(contiguous(permute(x[0], {2, 0, 1}))); }},
      {"to_int64_and_back", {index({30}, 100)}, [](const Ts& x) { return one(to(to(x[0], DType::Float32), DType::Int64)); }},
      {"fill", {normal({3, 3})}, [](const Ts& x) {
         Tensor a = clone(x[0]);
         fill_(transpose(a, 0, 1), 2.5);
         return one(a);
       }},
      {"cat", {normal({2, 3}), normal({4, 3})}, [](const Ts& x) { return one(cat({x[0], x[1]}, 0)); }},
      {"stack", {normal({2, 3}), normal({2, 3})}, [](const Ts& x) { return one(stack({x[0], x[1]}, 1)); }},
      // ---- reductions ----
      {"sum_all", {normal({37, 41})}, [](const Ts& x) { return one(sum(x[0])); }, 1e-4, 1e-4},
      {"sum_dim0", {normal({300, 17})}, [](const Ts& x) { return one(sum(x[0], {0})); }, 1e-4, 1e-4},
      {"sum_dim1_keepdim", {normal({17, 300})}, [](const Ts& x) { return one(sum(x[0], {1}, true)); }, 1e-4, 1e-4},
      {"sum_dims02", {normal({5, 6, 7})}, [](const Ts& x) { return one(sum(x[0], {0, 2})); }, 1e-4, 1e-4},
      {"sum_all_long", {normal({1 << 18})}, [](const Ts& x) { return one(sum(x[0])); }, 1e-2, 1e-4},  // in parts
      {"sum_rows_long", {normal({3, 100003})}, [](const Ts& x) { return one(sum(x[0], {1})); }, 1e-2, 1e-4},
      {"sum_dim0_many_rows", {normal({5000, 37})}, [](const Ts& x) { return one(sum(x[0], {0})); }, 1e-3, 1e-4},
      {"sum_int64", {index({100}, 7)}, [](const Ts& x) { return one(sum(x[0])); }},
      {"mean", {normal({8, 9})}, [](const Ts& x) { return one(mean(x[0], {1})); }},
      {"sum_to", {normal({4, 5, 6})}, [](const Ts& x) { return one(sum_to(x[0], {5, 1})); }, 1e-4, 1e-4},
      {"max_dim", {normal({9, 1500})}, [](const Ts& x) {
         auto [v, i] = max(x[0], 1);
         return Ts{v, i};
       }},
      {"argmax_dim0", {normal({40, 3})}, [](const Ts& x) { return one(argmax(x[0], 0)); }},
      // The reduced dim is not last and two dims follow it: the rows keep the other dims' order.
      {"max_dim0_3d", {normal({3, 4, 5})}, [](const Ts& x) {
         auto [v, i] = max(x[0], 0, true);
         return Ts{v, i};
       }},
      {"argmax_dim1_4d", {normal({2, 6, 3, 4})}, [](const Ts& x) { return one(argmax(x[0], 1)); }},
      // ---- softmax family ----
      {"softmax_last", {normal({7, 300})}, [](const Ts& x) { return one(softmax(x[0], -1)); }},
      {"softmax_dim0", {normal({5, 6})}, [](const Ts& x) { return one(softmax(x[0], 0)); }},
      {"softmax_dim1_4d", {normal({2, 7, 3, 5})}, [](const Ts& x) { return one(softmax(x[0], 1)); }},
      {"log_softmax_backward_dim0_3d", {normal({6, 3, 4}), normal({6, 3, 4})},
       [](const Ts& x) { return one(log_softmax_backward(x[0], log_softmax(x[1], 0), 0)); }},
      {"log_softmax", {normal({7, 2000})}, [](const Ts& x) { return one(log_softmax(x[0], 1)); }},
      // Logits near 1e4: m + log s would lose up to half an ulp of m (5e-4) on every output.
      {"log_softmax_large_logits", {normal({6, 40})},
       [](const Ts& x) { return one(log_softmax(add_scalar(mul_scalar(x[0], 5.0), 1e4), 1)); }},
      {"softmax_backward", {normal({4, 33}), normal({4, 33})},
       [](const Ts& x) { return one(softmax_backward(x[0], softmax(x[1], 1), 1)); }},
      {"log_softmax_backward", {normal({4, 33}), normal({4, 33})},
       [](const Ts& x) { return one(log_softmax_backward(x[0], log_softmax(x[1], 1), 1)); }},
      {"cross_entropy", {normal({16, 10}), index({16}, 10)}, [](const Ts& x) {
         auto [loss, probs] = cross_entropy(x[0], x[1]);
         return Ts{loss, probs};
       }},
      // One row near 1e6 (an ulp is 0.0625): m + log s - x_t lost up to 0.03 of the loss.
      {"cross_entropy_large_logits", {normal({1, 10}), index({1}, 10)}, [](const Ts& x) {
         auto [loss, probs] = cross_entropy(add_scalar(x[0], 1e6), x[1]);
         return Ts{loss, probs};
       }},
      {"cross_entropy_backward", {normal({16, 10}), index({16}, 10)}, [](const Ts& x) {
         auto [loss, probs] = cross_entropy(x[0], x[1]);
         return one(cross_entropy_backward(full({}, 1.5, loss.options()), probs, x[1]));
       }},
      // ---- matrix products (cuBLAS; float32 without TF32) ----
      {"matmul", {normal({33, 65}), normal({65, 17})}, [](const Ts& x) { return one(matmul(x[0], x[1])); }, 1e-4, 1e-4},
      {"matmul_batched", {normal({3, 5, 8}), normal({3, 8, 4})}, [](const Ts& x) { return one(matmul(x[0], x[1])); },
       1e-4, 1e-4},
      {"matmul_weight_broadcast", {normal({2, 5, 8}), normal({6, 8})},
       [](const Ts& x) { return one(matmul(x[0], transpose(x[1], 0, 1))); }, 1e-4, 1e-4},
      {"matmul_transposed_a", {normal({8, 5}), normal({8, 3})},
       [](const Ts& x) { return one(matmul(transpose(x[0], 0, 1), x[1])); }, 1e-4, 1e-4},
      {"matmul_broadcast_batch", {normal({2, 1, 3, 4}), normal({5, 4, 2})},
       [](const Ts& x) { return one(matmul(x[0], x[1])); }, 1e-4, 1e-4},
      {"matmul_vector", {normal({7}), normal({7, 3})}, [](const Ts& x) { return one(matmul(x[0], x[1])); }, 1e-4, 1e-4},
      {"addmm", {normal({4, 6}), normal({4, 5}), normal({5, 6})}, [](const Ts& x) {
         Tensor c = clone(x[0]);
         addmm_(c, x[1], x[2]);
         return one(c);
       }, 1e-4, 1e-4},
      // ---- transformer kernels ----
      {"layernorm", {normal({2, 5, 48}), normal({48}), normal({48})}, [](const Ts& x) {
         auto [out, mean, rstd] = layernorm(x[0], x[1], x[2], 1e-5);
         return Ts{out, mean, rstd};
       }},
      {"layernorm_backward", {normal({2, 5, 48}), normal({48}), normal({48}), normal({2, 5, 48})}, [](const Ts& x) {
         auto [out, mean, rstd] = layernorm(x[0], x[1], x[2], 1e-5);
         auto [dx, dw, db] = layernorm_backward(x[3], x[0], x[1], mean, rstd);
         return Ts{dx, dw, db};
       }, 1e-4, 1e-4},
      // 1111 rows: dweight / dbias in 4 chunks (the last one short), then the chunks added; 300
      // columns: two column blocks, the second part-full.
      {"layernorm_backward_many_rows", {normal({1111, 300}), normal({300}), normal({300}), normal({1111, 300})},
       [](const Ts& x) {
         auto [out, mean, rstd] = layernorm(x[0], x[1], x[2], 1e-5);
         auto [dx, dw, db] = layernorm_backward(x[3], x[0], x[1], mean, rstd);
         return Ts{dx, dw, db};
       }, 1e-3, 1e-4},
      {"embedding", {normal({50, 16}), index({3, 7}, 50)}, [](const Ts& x) { return one(embedding(x[0], x[1])); }},
      {"embedding_backward", {normal({3, 40, 16}), index({3, 40}, 9)},
       [](const Ts& x) { return one(embedding_backward(x[0], x[1], 9)); }, 1e-5, 1e-4},
      {"index_select", {normal({5, 6, 3}), index({4}, 6)}, [](const Ts& x) { return one(index_select(x[0], 1, x[1])); }},
      {"index_add", {normal({5, 4, 3}), index({4}, 6)}, [](const Ts& x) { return one(index_add({5, 6, 3}, 1, x[1], x[0])); }},
      {"one_hot", {index({12}, 5)}, [](const Ts& x) { return one(one_hot(x[0], 5)); }},
      {"causal_softmax", {normal({2, 3, 6, 9})}, [](const Ts& x) { return one(causal_softmax(x[0], 0.5)); }},
      {"causal_softmax_backward", {normal({2, 3, 6, 9}), normal({2, 3, 6, 9})},
       [](const Ts& x) { return one(causal_softmax_backward(x[1], causal_softmax(x[0], 0.5), 0.5)); }},
      {"attention_forward", {normal({2, 7, 3 * 12})}, [](const Ts& x) {
         auto [out, att] = attention_forward(x[0], 3);
         return Ts{out, att};
       }, 1e-4, 1e-4},
      {"attention_forward_dropout", {normal({2, 7, 3 * 12})}, [key](const Ts& x) {
         Tensor mask = dropout_mask({2, 3, 7, 7}, x[0].options(), 0.25, key);
         auto [out, att] = attention_forward(x[0], 3, mask);
         return Ts{out, att};
       }, 1e-4, 1e-4},
      {"attention_backward", {normal({2, 7, 3 * 12}), normal({2, 7, 12})}, [key](const Ts& x) {
         Tensor mask = dropout_mask({2, 3, 7, 7}, x[0].options(), 0.25, key);
         auto [out, att] = attention_forward(x[0], 3, mask);
         return one(attention_backward(x[1], x[0], att, 3, mask));
       }, 1e-4, 1e-4},
      // ---- random: counter-based masks are the same bits on both devices ----
      {"dropout_mask_counter", {normal({6, 13})}, [key](const Ts& x) { return one(dropout_mask(x[0], 0.3, key)); }, 0, 0},
      // ---- optimizer ----
      {"adamw_step", {normal({1030}), normal({1030}), normal({1030}), positive({1030})}, [](const Ts& x) {
         Tensor p = clone(x[0]), m = clone(x[2]), v = clone(x[3]);
         adamw_step_(p, x[1], m, v, {.lr = 1e-2, .weight_decay = 0.1, .step = 3});
         return Ts{p, m, v};
       }},
      {"sgd_step", {normal({1030}), normal({1030})}, [](const Ts& x) {
         Tensor p = clone(x[0]);
         sgd_step_(p, x[1], Tensor(), {.lr = 1e-2, .weight_decay = 0.1});
         return one(p);
       }},
      {"sgd_step_momentum_first", {normal({1030}), normal({1030})}, [](const Ts& x) {
         Tensor p = clone(x[0]), buf = zeros_like(x[0]);
         sgd_step_(p, x[1], buf, {.lr = 1e-2, .momentum = 0.9, .first = true});
         return Ts{p, buf};
       }},
      {"sgd_step_unaligned", {normal({1031}), normal({1030})}, [](const Ts& x) {  // p 4 bytes past alignment
         Tensor base = clone(x[0]);
         sgd_step_(narrow(base, 0, 1, 1030), x[1], Tensor(), {.lr = 1e-2, .weight_decay = 0.1});
         return one(base);
       }},
      {"sgd_step_nesterov", {normal({1027}), normal({1027}), normal({1027})}, [](const Ts& x) {
         Tensor p = clone(x[0]), buf = clone(x[2]);
         sgd_step_(p, x[1], buf, {.lr = 1e-2, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.1, .nesterov = true});
         return Ts{p, buf};
       }},
  };
}

class CudaVsCpu : public ::testing::TestWithParam<CudaCase> {};

TEST_P(CudaVsCpu, MatchesTheCpuKernel) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  const CudaCase& c = GetParam();
  Generator gen(42);
  Ts cpu_in, gpu_in;
  for (const In& in : c.inputs) {
    cpu_in.push_back(make_input(in, gen));
    gpu_in.push_back(cpu_in.back().to(Device::cuda(0)));
  }
  const Ts want = c.run(cpu_in);
  const Ts got = c.run(gpu_in);
  ASSERT_EQ(want.size(), got.size());
  for (size_t k = 0; k < want.size(); ++k) {
    SCOPED_TRACE("output " + std::to_string(k));
    EXPECT_EQ(got[k].device(), Device::cuda(0));
    ASSERT_EQ(got[k].sizes(), want[k].sizes());
    ASSERT_EQ(got[k].dtype(), want[k].dtype());
    const auto w = want[k].to_vector<double>(), g = got[k].to_vector<double>();
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      const double excess = std::abs(g[i] - w[i]) - (c.atol + c.rtol * std::abs(w[i]));
      if (excess > worst || std::isnan(g[i]) != std::isnan(w[i])) {
        worst = std::isnan(excess) ? 1e30 : excess;
        at = i;
      }
    }
    EXPECT_LE(worst, 0.0) << c.name << ": element " << at << " cpu " << w[at] << " cuda " << g[at];
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, CudaVsCpu, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<CudaCase>& info) { return info.param.name; });

}  // namespace
}  // namespace minipipe
