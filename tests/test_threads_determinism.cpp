// Reductions and optimizer updates split across intra-op threads give exactly the bits of one
// thread: sums over every kind of dim set (threads split the outputs, never an output's
// elements), strided inputs, and AdamW / SGD steps on parameters big enough to be split.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <vector>

#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/threads.h"

namespace minipipe {
namespace {

// Runs f with 1, 2 and 3 intra-op threads and checks every result has the bits of the first.
void expect_same_bits_on_any_thread_count(const std::function<Tensor()>& f, const std::string& what) {
  const int was = get_num_threads();
  std::vector<std::vector<unsigned char>> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Tensor r = ops::contiguous(f());
    std::vector<unsigned char> bytes(r.nbytes());
    std::memcpy(bytes.data(), r.raw_data(), r.nbytes());
    results.push_back(std::move(bytes));
  }
  set_num_threads(was);
  EXPECT_EQ(results[0], results[1]) << what << ": 2 threads differ from 1";
  EXPECT_EQ(results[0], results[2]) << what << ": 3 threads differ from 1";
}

TEST(ThreadsDeterminism, SumsHaveTheBitsOfOneThread) {
  Generator g(11);
  // float32 sums accumulate in double, where a few hundred floats mostly add exactly in any
  // order; the float64 tensors of a wide range of magnitudes are the ones whose bits depend on it.
  const Tensor a = ops::mul(randn({300, 517}, {}, &g), ops::exp(randn({300, 517}, {}, &g)));
  const Tensor b = randn({7, 3000, 5}, {}, &g);
  const Tensor big = randn({64, 2048}, {}, &g);
  const Tensor d = ops::mul(randn({300, 517}, DType::Float64, &g), ops::exp(ops::mul_scalar(randn({300, 517}, DType::Float64, &g), 8)));
  const Tensor i = arange(int64_t{40000}, DType::Int64);
  expect_same_bits_on_any_thread_count([&] { return ops::sum(a, {0}, false); }, "sum over dim 0");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(a, {1}, true); }, "sum over dim 1");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(a); }, "sum of all");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(b, {1}, false); }, "sum over the middle dim");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(b, {0, 2}, false); }, "sum over the outer dims");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(ops::transpose(big, 0, 1), {1}, false); },
                                       "sum of a transposed view");
  expect_same_bits_on_any_thread_count([&] { return ops::mean(big, {0}, false); }, "mean over dim 0");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(d, {0}, false); }, "float64 sum over dim 0");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(d, {1}, false); }, "float64 sum over dim 1");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(ops::transpose(d, 0, 1), {1}, false); },
                                       "float64 sum of a transposed view");
  expect_same_bits_on_any_thread_count([&] { return ops::sum(ops::reshape(i, {200, 200}), {1}, false); },
                                       "int64 sum");
  expect_same_bits_on_any_thread_count([&] { return ops::max(a, 1, false).first; }, "max over dim 1");
}

TEST(ThreadsDeterminism, SplitSumsAreStillRight) {
  // Integer-valued floats sum exactly in double: the threaded result must be the exact one.
  const int was = get_num_threads();
  set_num_threads(2);
  Tensor x = ops::reshape(arange(0.0, 200.0 * 300.0), {200, 300});  // x[r][c] = 300 r + c
  auto rows = ops::sum(x, {1}, false).to_vector<float>();
  auto cols = ops::sum(x, {0}, false).to_vector<float>();
  set_num_threads(was);
  for (int r = 0; r < 200; ++r) ASSERT_EQ(rows[r], 300.0f * 300 * r + 299 * 300 / 2) << "row " << r;
  for (int c = 0; c < 300; ++c) ASSERT_EQ(cols[c], 300.0f * 199 * 200 / 2 + 200.0f * c) << "col " << c;
}

// Three optimizer steps on a parameter of 100,000 elements (split across threads) and a small one.
Tensor run_optimizer(bool adamw) {
  Generator g(5);
  Tensor big = randn({100, 1000}, {}, &g);
  Tensor small = randn({10}, {}, &g);
  big.set_requires_grad(true);
  small.set_requires_grad(true);
  std::unique_ptr<optim::Optimizer> opt;
  if (adamw) opt = std::make_unique<optim::AdamW>(std::vector<Tensor>{big, small}, optim::AdamWOptions{.lr = 0.01});
  else
    opt = std::make_unique<optim::SGD>(std::vector<Tensor>{big, small},
                                       optim::SGDOptions{.lr = 0.01, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
  for (int step = 0; step < 3; ++step) {
    big.mutable_grad() = randn({100, 1000}, {}, &g);
    small.mutable_grad() = randn({10}, {}, &g);
    opt->step();
  }
  return ops::cat({ops::reshape(big, {-1}), small}, 0);
}

TEST(ThreadsDeterminism, OptimizerStepsHaveTheBitsOfOneThread) {
  expect_same_bits_on_any_thread_count([] { return run_optimizer(true); }, "AdamW");
  expect_same_bits_on_any_thread_count([] { return run_optimizer(false); }, "SGD with Nesterov momentum");
}

}  // namespace
}  // namespace minipipe
