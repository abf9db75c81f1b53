// Forward values of every raw op in tensor/ops.h against hand-computed results: one table entry
// per case (adding an op is one entry), a table of bad inputs and the errors they must raise,
// and layout / dtype / thread-count invariance.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/threads.h"

namespace minipipe {
namespace {

using V = std::vector<double>;
using Vi = std::vector<int64_t>;
using Vf = std::vector<float>;

Tensor f64(V v, Shape s = {}) { return from_vector(v, std::move(s)); }
Tensor f32(Vf v, Shape s = {}) { return from_vector(v, std::move(s)); }
Tensor i64(Vi v, Shape s = {}) { return from_vector(v, std::move(s)); }
Tensor s64(double v) { return scalar_tensor(v, DType::Float64); }  // 0-dim
Tensor s32(double v) { return scalar_tensor(v, DType::Float32); }

constexpr float kInf32 = std::numeric_limits<float>::infinity();
// float32 expected values: the float64 function at each input, rounded once to float.
Tensor f32r(const Vf& xs, double (*f)(double)) {
  Vf out;
  for (float x : xs) out.push_back(static_cast<float>(f(x)));
  return f32(out);
}

// The closed form of GELU's tanh approximation, written out independently of the kernel.
double gelu_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

struct OpCase {
  std::string name;
  std::function<Tensor()> run;
  Tensor expected;  // shape, dtype and values
  double tol = 0;   // 0: bit-exact; else |got - want| <= tol * max(1, |want|)
};

// Shared inputs (float64 unless named otherwise).
const Tensor A = f64({1, 2, 3, 4, 5, 6}, {2, 3});    // [[1, 2, 3], [4, 5, 6]]
const Tensor B = f64({6, 5, 4, 3, 2, 1}, {2, 3});    // [[6, 5, 4], [3, 2, 1]]
const Tensor COL = f64({1, 2}, {2, 1});
const Tensor ROW = f64({10, 20, 30}, {3});
const Tensor X3 = ops::reshape(arange(0.0, 24.0, 1.0, DType::Float64), {2, 3, 4});  // 0..23

std::vector<OpCase> forward_cases() {
  const double e = std::exp(1.0), l2 = std::log(2.0), l3 = std::log(3.0);
  return {
      // ---- arithmetic with broadcasting ----
      {"add", [] { return ops::add(A, B); }, f64({7, 7, 7, 7, 7, 7}, {2, 3})},
      {"add_broadcast_row", [] { return ops::add(A, ROW); }, f64({11, 22, 33, 14, 25, 36}, {2, 3})},
      {"add_broadcast_col_row", [] { return ops::add(COL, ROW); }, f64({11, 21, 31, 12, 22, 32}, {2, 3})},
      {"add_int64", [] { return ops::add(i64({1, 2}), i64({40, 50})); }, i64({41, 52})},
      {"sub_broadcast_col", [] { return ops::sub(A, COL); }, f64({0, 1, 2, 2, 3, 4}, {2, 3})},
      {"mul", [] { return ops::mul(A, B); }, f64({6, 10, 12, 12, 10, 6}, {2, 3})},
      {"mul_float32", [] { return ops::mul(f32({1.5f, -2}), f32({4, 0.25f})); }, f32({6, -0.5f})},
      {"div_broadcast_col", [] { return ops::div(A, COL); }, f64({1, 2, 3, 2, 2.5, 3}, {2, 3})},
      {"div_by_zero", [] { return ops::div(f64({1, -1}), f64({0, 0})); },
       f64({std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()})},
      {"maximum", [] { return ops::maximum(A, B); }, f64({6, 5, 4, 4, 5, 6}, {2, 3})},
      {"neg", [] { return ops::neg(A); }, f64({-1, -2, -3, -4, -5, -6}, {2, 3})},
      {"abs", [] { return ops::abs(f64({-1.5, 0, 2})); }, f64({1.5, 0, 2})},
      {"add_scalar", [] { return ops::add_scalar(A, 0.5); }, f64({1.5, 2.5, 3.5, 4.5, 5.5, 6.5}, {2, 3})},
      {"mul_scalar", [] { return ops::mul_scalar(A, -2); }, f64({-2, -4, -6, -8, -10, -12}, {2, 3})},
      // ---- unary math ----
      {"exp", [] { return ops::exp(f64({0, 1, -1})); }, f64({1, e, 1 / e}), 1e-15},
      {"log", [=] { return ops::log(f64({1, e, 0.5})); }, f64({0, 1, -l2}), 1e-15},
      {"sqrt", [] { return ops::sqrt(f64({4, 9, 2})); }, f64({2, 3, std::sqrt(2.0)})},
      {"pow_2", [] { return ops::pow_scalar(f64({-3, 0.5}), 2); }, f64({9, 0.25})},
      {"pow_3", [] { return ops::pow_scalar(f64({2, -3}), 3); }, f64({8, -27})},
      {"pow_half", [] { return ops::pow_scalar(f64({4, 9}), 0.5); }, f64({2, 3})},
      {"pow_minus_one", [] { return ops::pow_scalar(f64({2, -4}), -1); }, f64({0.5, -0.25})},
      {"tanh", [] { return ops::tanh(f64({0, 1, -2})); }, f64({0, std::tanh(1.0), std::tanh(-2.0)}), 1e-15},
      {"sigmoid", [] { return ops::sigmoid(f64({0, 2, -40})); },
       f64({0.5, 1 / (1 + std::exp(-2.0)), std::exp(-40.0) / (1 + std::exp(-40.0))}), 1e-15},
      {"sigmoid_saturates", [] { return ops::sigmoid(f32({-1000, 1000})); }, f32({0, 1})},
      {"relu", [] { return ops::relu(f64({-1, 0, 2.5, -0.0})); }, f64({0, 0, 2.5, 0})},
      {"gelu_tanh_approx", [] { return ops::gelu(f64({-3, -1, 0, 0.5, 1, 2, 5})); },
       f64({gelu_ref(-3), gelu_ref(-1), 0, gelu_ref(0.5), gelu_ref(1), gelu_ref(2), gelu_ref(5)}), 1e-15},
      {"gelu_value", [] { return ops::gelu(f64({1})); }, f64({0.8411919906082768}), 1e-15},
      // float32 runs fast_math.h's vectorised kernels: within 1 ulp of float64 rounded (exp, log,
      // tanh), 2 (sigmoid), 12 (GELU on |x| <= 3); swept over all floats in test_fast_math.cpp.
      {"exp_f32", [] { return ops::exp(f32({0, 1, -1, 10, -20})); }, f32r(Vf{0, 1, -1, 10, -20}, [](double x) { return std::exp(x); }), 0x1p-23},
      {"exp_f32_limits", [] { return ops::exp(f32({-kInf32, -104, -1000, 89, kInf32})); }, f32({0, 0, 0, kInf32, kInf32})},
      {"exp_f32_subnormal", [] { return ops::exp(f32({-100})); }, f32r(Vf{-100}, [](double x) { return std::exp(x); }), 1.5e-45},
      {"log_f32", [] { return ops::log(f32({1, 2.7182817f, 0.5f, 1e-40f, 3e38f})); },
       f32r(Vf{1, 2.7182817f, 0.5f, 1e-40f, 3e38f}, [](double x) { return std::log(x); }), 0x1p-23},
      {"log_f32_limits", [] { return ops::log(f32({0, -0.0f, kInf32})); }, f32({-kInf32, -kInf32, kInf32})},
      {"tanh_f32", [] { return ops::tanh(f32({0, 0.001f, 0.5f, 1, -2})); },
       f32r(Vf{0, 0.001f, 0.5f, 1, -2}, [](double x) { return std::tanh(x); }), 0x1p-23},
      {"tanh_f32_saturates", [] { return ops::tanh(f32({-20, 20, 1e30f, -kInf32})); }, f32({-1, 1, 1, -1})},
      {"sigmoid_f32", [] { return ops::sigmoid(f32({0, 2, -2, -40})); },
       f32r(Vf{0, 2, -2, -40}, [](double x) { return 1 / (1 + std::exp(-x)); }), 0x1p-22},
      {"gelu_f32", [] { return ops::gelu(f32({-3, -1, 0, 0.5f, 1, 2, 5})); }, f32r(Vf{-3, -1, 0, 0.5f, 1, 2, 5}, gelu_ref), 1e-6},
      // ---- comparisons, where, masked_fill ----
      {"eq", [] { return ops::eq(f64({1, 2, 3}), f64({3, 2, 1})); }, f64({0, 1, 0})},
      {"ne", [] { return ops::ne(f64({1, 2, 3}), f64({3, 2, 1})); }, f64({1, 0, 1})},
      {"lt", [] { return ops::lt(f64({1, 2, 3}), f64({3, 2, 1})); }, f64({1, 0, 0})},
      {"le", [] { return ops::le(f64({1, 2, 3}), f64({3, 2, 1})); }, f64({1, 1, 0})},
      {"gt", [] { return ops::gt(f64({1, 2, 3}), f64({3, 2, 1})); }, f64({0, 0, 1})},
      {"ge", [] { return ops::ge(f64({1, 2, 3}), f64({3, 2, 1})); }, f64({0, 1, 1})},
      {"gt_broadcast_scalar", [] { return ops::gt(A, scalar_tensor(3.5, DType::Float64)); }, f64({0, 0, 0, 1, 1, 1}, {2, 3})},
      {"lt_int64", [] { return ops::lt(i64({1, 5}), i64({3})); }, i64({1, 0})},
      {"where", [] { return ops::where(f64({1, 0, 1, 0, 0, 1}, {2, 3}), A, B); }, f64({1, 5, 3, 3, 2, 6}, {2, 3})},
      {"where_broadcast", [] { return ops::where(f64({0, 1}, {2, 1}), A, ROW); }, f64({10, 20, 30, 4, 5, 6}, {2, 3})},
      {"where_float32_cond", [] { return ops::where(f32({0, 2}), f64({1, 2}), f64({3, 4})); }, f64({3, 2})},
      // cond != 0 is tested in cond's own dtype: 0.5 is true for int64 values, 1e-50 for float32 ones.
      {"where_fractional_cond_int64", [] { return ops::where(f64({0.5, 0, -0.25}), i64({1, 2, 3}), i64({7, 8, 9})); },
       i64({1, 8, 3})},
      {"where_tiny_cond_float32", [] { return ops::where(f64({1e-50, 0}), f32({1, 2}), f32({3, 4})); }, f32({1, 4})},
      {"where_int64_cond", [] { return ops::where(i64({0, 3}), f64({1, 2}), f64({3, 4})); }, f64({3, 2})},
      {"masked_fill", [] { return ops::masked_fill(A, f64({1, 0, 0}, {3}), -1); }, f64({-1, 2, 3, -1, 5, 6}, {2, 3})},
      // ---- reductions ----
      {"sum_all", [] { return ops::sum(A); }, s64(21)},
      {"sum_dim0", [] { return ops::sum(A, {0}); }, f64({5, 7, 9})},
      {"sum_dim1_keepdim", [] { return ops::sum(A, {1}, true); }, f64({6, 15}, {2, 1})},
      {"sum_negdim", [] { return ops::sum(A, {-1}); }, f64({6, 15})},
      {"sum_dims_3d", [] { return ops::sum(X3, {0, 2}); }, f64({0 + 1 + 2 + 3 + 12 + 13 + 14 + 15, 92, 124})},
      {"sum_dims_3d_keepdim", [] { return ops::sum(X3, {2, 0}, true); }, f64({60, 92, 124}, {1, 3, 1})},
      {"sum_int64", [] { return ops::sum(i64({1, 2, 3, 4}, {2, 2}), {0}); }, i64({4, 6})},
      {"sum_float32_accumulates_in_double", [] { return ops::sum(full({1 << 20}, 0.1)); },
       s32(static_cast<float>(static_cast<double>(0.1f) * (1 << 20)))},
      {"mean_all", [] { return ops::mean(A); }, s64(3.5)},
      {"mean_dim0", [] { return ops::mean(A, {0}); }, f64({2.5, 3.5, 4.5})},
      {"mean_dim1_keepdim", [] { return ops::mean(A, {1}, true); }, f64({2, 5}, {2, 1})},
      {"max_dim1_values", [] { return ops::max(A, 1).first; }, f64({3, 6})},
      {"max_dim1_indices", [] { return ops::max(A, 1).second; }, i64({2, 2})},
      {"max_dim0_keepdim", [] { return ops::max(B, 0, true).first; }, f64({6, 5, 4}, {1, 3})},
      {"max_mid_dim", [] { return ops::max(X3, 1).first; }, f64({8, 9, 10, 11, 20, 21, 22, 23}, {2, 4})},
      {"max_all", [] { return ops::max(B); }, s64(6)},
      {"argmax_first_tie_wins", [] { return ops::argmax(f64({1, 3, 3, 0}, {1, 4}), 1); }, i64({1})},
      {"argmax_dim0_keepdim", [] { return ops::argmax(B, 0, true); }, i64({0, 0, 0}, {1, 3})},
      {"sum_to", [] { return ops::sum_to(A, {1, 3}); }, f64({5, 7, 9}, {1, 3})},
      {"sum_to_leading", [] { return ops::sum_to(X3, {4}); }, f64({60, 66, 72, 78})},
      // ---- softmax family ----
      {"softmax_last", [=] { return ops::softmax(f64({0, l2, l3}), 0); }, f64({1.0 / 6, 2.0 / 6, 3.0 / 6}), 1e-15},
      {"softmax_dim0", [=] { return ops::softmax(f64({0, l3, l3, 0}, {2, 2}), 0); }, f64({0.25, 0.75, 0.75, 0.25}, {2, 2}), 1e-15},
      {"softmax_stable", [] { return ops::softmax(f32({1000, 1000, -1000}), -1); }, f32({0.5f, 0.5f, 0})},
      {"softmax_rows", [] { return ops::softmax(f64({1, 1, 5, 5}, {2, 2}), 1); }, f64({0.5, 0.5, 0.5, 0.5}, {2, 2})},
      {"softmax_masked_f32", [] { return ops::softmax(f32({0, -kInf32, 0, -kInf32}), -1); }, f32({0.5f, 0, 0.5f, 0})},
      {"softmax_f32", [=] { return ops::softmax(f32({0, float(l2), float(l3)}), -1); }, f32({1.0f / 6, 2.0f / 6, 3.0f / 6}), 0x1p-22},
      {"log_softmax_f32", [=] { return ops::log_softmax(f32({0, float(l2), float(l3)}), -1); },
       f32({float(-std::log(6.0)), float(std::log(2.0 / 6)), float(std::log(3.0 / 6))}), 0x1p-22},
      {"log_softmax", [=] { return ops::log_softmax(f64({0, l2, l3}), -1); },
       f64({-std::log(6.0), std::log(2.0 / 6), std::log(3.0 / 6)}), 1e-15},
      {"log_softmax_mid_dim", [] { return ops::log_softmax(ops::reshape(f64({5, 1, 5, 1}), {1, 2, 2}), 1); },
       full({1, 2, 2}, -std::log(2.0), DType::Float64), 1e-15},
      {"cross_entropy", [=] { return ops::cross_entropy(f64({0, 0, 0, 0, l2, 0}, {2, 3}), i64({1, 1})).first; },
       s64((l3 + l2) / 2), 1e-15},
      {"cross_entropy_probs", [=] { return ops::cross_entropy(f64({0, 0, 0, 0, l2, 0}, {2, 3}), i64({1, 1})).second; },
       f64({1.0 / 3, 1.0 / 3, 1.0 / 3, 0.25, 0.5, 0.25}, {2, 3}), 1e-15},
      {"cross_entropy_large_logits", [] { return ops::cross_entropy(f32({1000, 0}, {1, 2}), i64({1})).first; },
       s32(1000)},
      {"cross_entropy_backward",
       [=] {
         auto [loss, probs] = ops::cross_entropy(f64({0, 0, 0, 0, l2, 0}, {2, 3}), i64({1, 2}));
         return ops::cross_entropy_backward(scalar_tensor(2.0, DType::Float64), probs, i64({1, 2}));
       },
       f64({1.0 / 3, 1.0 / 3 - 1, 1.0 / 3, 0.25, 0.5, 0.25 - 1}, {2, 3}), 1e-15},
      // ---- matmul: small integers, so float32 is exact ----
      {"matmul_2d", [] { return ops::matmul(f32({1, 2, 3, 4}, {2, 2}), f32({5, 6, 7, 8}, {2, 2})); },
       f32({19, 22, 43, 50}, {2, 2})},
      {"matmul_2x3_3x2", [] { return ops::matmul(A, ops::transpose(B, 0, 1)); }, f64({28, 10, 73, 28}, {2, 2})},
      {"matmul_batched",
       [] { return ops::matmul(f32({1, 2, 3, 4, 1, 0, 0, 1}, {2, 2, 2}), f32({5, 6, 7, 8, 1, 2, 3, 4}, {2, 2, 2})); },
       f32({19, 22, 43, 50, 1, 2, 3, 4}, {2, 2, 2})},
      {"matmul_broadcast_batch",  // [2, 1, 2] x [3, 1]: the right operand is shared by both batches
       [] { return ops::matmul(f32({1, 2, 3, 4}, {2, 1, 2}), f32({1, 2, 3, 4, 5, 6}, {2, 3})); },
       f32({9, 12, 15, 19, 26, 33}, {2, 1, 3})},
      {"matmul_broadcast_batch_both",  // [2, 1, 1, 2] x [3, 2, 1] -> [2, 3, 1, 1]
       [] { return ops::matmul(f32({1, 2, 3, 4}, {2, 1, 1, 2}), f32({1, 0, 0, 1, 1, 1}, {3, 2, 1})); },
       f32({1, 2, 3, 3, 4, 7}, {2, 3, 1, 1})},
      {"matmul_vec_mat", [] { return ops::matmul(f64({1, 2}), A); }, f64({9, 12, 15})},
      {"matmul_mat_vec", [] { return ops::matmul(A, f64({1, 0, -1})); }, f64({-2, -2})},
      {"matmul_vec_vec", [] { return ops::matmul(f64({1, 2, 3}), f64({4, 5, 6})); }, s64(32)},
      {"matmul_vec_batched", [] { return ops::matmul(f64({1, -1}), ops::reshape(X3, {3, 2, 4})); },
       f64({-4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4}, {3, 4})},
      {"matmul_transposed_left", [] { return ops::matmul(ops::transpose(f32({1, 3, 2, 4}, {2, 2}), 0, 1), f32({5, 6, 7, 8}, {2, 2})); },
       f32({19, 22, 43, 50}, {2, 2})},
      {"matmul_transposed_right", [] { return ops::matmul(f32({1, 2, 3, 4}, {2, 2}), ops::transpose(f32({5, 7, 6, 8}, {2, 2}), 0, 1)); },
       f32({19, 22, 43, 50}, {2, 2})},
      {"matmul_transposed_both", [] { return ops::matmul(ops::transpose(A, 0, 1), ops::transpose(f64({1, 0, 0, 1, 1, 1}, {3, 2}), 0, 1)); },
       f64({1, 4, 5, 2, 5, 7, 3, 6, 9}, {3, 3})},
      {"matmul_strided_slice", [] { return ops::matmul(ops::slice(A, 1, 0, 3, 2), f64({1, 1}, {2, 1})); }, f64({4, 10}, {2, 1})},
      {"matmul_expanded", [] { return ops::matmul(ops::expand(f64({1, 2, 3}, {1, 3}), {2, 3}), ops::transpose(A, 0, 1)); },
       f64({14, 32, 14, 32}, {2, 2})},
      {"matmul_empty_inner", [] { return ops::matmul(zeros({2, 0}), zeros({0, 3})); }, f32({0, 0, 0, 0, 0, 0}, {2, 3})},
      // ---- joining and indexing ----
      {"cat_dim0", [] { return ops::cat({A, ops::unsqueeze(ROW, 0)}, 0); }, f64({1, 2, 3, 4, 5, 6, 10, 20, 30}, {3, 3})},
      {"cat_dim1", [] { return ops::cat({COL, A, COL}, -1); }, f64({1, 1, 2, 3, 1, 2, 4, 5, 6, 2}, {2, 5})},
      {"cat_noncontig", [] { return ops::cat({ops::transpose(A, 0, 1), ops::transpose(B, 0, 1)}, 1); },
       f64({1, 4, 6, 3, 2, 5, 5, 2, 3, 6, 4, 1}, {3, 4})},
      {"stack_dim0", [] { return ops::stack({ROW, ROW}, 0); }, f64({10, 20, 30, 10, 20, 30}, {2, 3})},
      {"stack_last", [] { return ops::stack({f64({1, 2}), f64({3, 4})}, -1); }, f64({1, 3, 2, 4}, {2, 2})},
      {"index_select_dim0_repeated", [] { return ops::index_select(A, 0, i64({1, 1, 0})); }, f64({4, 5, 6, 4, 5, 6, 1, 2, 3}, {3, 3})},
      {"index_select_dim1", [] { return ops::index_select(A, 1, i64({2, 0})); }, f64({3, 1, 6, 4}, {2, 2})},
      {"index_add_repeated", [] { return ops::index_add({3}, 0, i64({2, 0, 2}), f64({1, 10, 100})); }, f64({10, 0, 101})},
      {"one_hot", [] { return ops::one_hot(i64({0, 2, 1}), 3); }, f32({1, 0, 0, 0, 0, 1, 0, 1, 0}, {3, 3})},
      {"one_hot_2d_float64", [] { return ops::one_hot(i64({1, 0}, {2, 1}), 2, DType::Float64); }, f64({0, 1, 1, 0}, {2, 1, 2})},
      // ---- copies ----
      {"contiguous_of_transpose", [] { return ops::contiguous(ops::transpose(A, 0, 1)); }, f64({1, 4, 2, 5, 3, 6}, {3, 2})},
      {"to_float32", [] { return ops::to(f64({0.5, -3}), DType::Float32); }, f32({0.5f, -3})},
      {"to_int64_truncates", [] { return ops::to(f64({2.9, -2.9}), DType::Int64); }, i64({2, -2})},
      {"to_int64_limits", [] { return ops::to(f64({-0x1p63, 0x1p62, -0.5}), DType::Int64); },
       i64({std::numeric_limits<int64_t>::min(), int64_t{1} << 62, 0})},
  };
}

// Compares shape, dtype and values.
void expect_tensor(const Tensor& got, const Tensor& want, double tol, const std::string& name) {
  ASSERT_TRUE(got.defined()) << name;
  EXPECT_EQ(shape_str(got.sizes()), shape_str(want.sizes())) << name;
  EXPECT_EQ(dtype_name(got.dtype()), std::string(dtype_name(want.dtype()))) << name;
  if (got.sizes() != want.sizes()) return;
  const V g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    if (tol == 0) EXPECT_EQ(g[i], w[i]) << name << " element " << i << "\n got " << got << "\nwant " << want;
    else EXPECT_NEAR(g[i], w[i], tol * std::max(1.0, std::fabs(w[i]))) << name << " element " << i;
  }
}

void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

class OpForward : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpForward, MatchesHandComputed) {
  const OpCase& c = GetParam();
  expect_tensor(c.run(), c.expected, c.tol, c.name);
}

INSTANTIATE_TEST_SUITE_P(Ops, OpForward, ::testing::ValuesIn(forward_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) { return info.param.name; });

// ---- errors: each names the op and the shapes ----

struct ErrorCase {
  std::string name;
  std::function<void()> run;
  std::vector<std::string> message_parts;
};

std::vector<ErrorCase> error_cases() {
  return {
      {"add_shapes", [] { ops::add(zeros({2, 3}), zeros({3, 2})); }, {"add: shapes [2, 3] and [3, 2] cannot be broadcast"}},
      {"sub_shapes", [] { ops::sub(zeros({4}), zeros({5})); }, {"sub", "[4]", "[5]"}},
      {"mul_dtypes", [] { ops::mul(zeros({2}), zeros({2}, DType::Float64)); }, {"mul: dtype mismatch", "float32", "float64", "[2]"}},
      {"div_int64", [] { ops::div(zeros({2}, DType::Int64), zeros({2}, DType::Int64)); }, {"div", "floating-point", "int64"}},
      {"log_int64", [] { ops::log(zeros({2}, DType::Int64)); }, {"log", "int64"}},
      {"pow_int64", [] { ops::pow_scalar(zeros({2}, DType::Int64), 2); }, {"pow", "int64"}},
      {"where_shapes", [] { ops::where(zeros({3}), zeros({2, 2}), zeros({2, 2})); }, {"where", "[3]", "[2, 2]"}},
      {"masked_fill_shapes", [] { ops::masked_fill(zeros({2, 3}), zeros({2}), 0); }, {"where", "[2]", "[2, 3]"}},
      {"eq_shapes", [] { ops::eq(zeros({2}), zeros({3})); }, {"eq", "[2]", "[3]"}},
      {"sum_dim_range", [] { ops::sum(zeros({2, 3}), {2}); }, {"sum: dim 2 out of range for a 2-D tensor"}},
      {"sum_dim_repeated", [] { ops::sum(zeros({2, 3}), {1, -1}); }, {"sum", "appears twice"}},
      {"mean_int64", [] { ops::mean(zeros({2}, DType::Int64)); }, {"mean", "floating-point", "int64"}},
      {"mean_empty", [] { ops::mean(zeros({0, 3}), {0}); }, {"mean", "empty", "[0, 3]"}},
      {"max_dim_range", [] { ops::max(zeros({2, 3}), -3); }, {"max: dim -3 out of range for a 2-D tensor"}},
      {"max_empty_dim", [] { ops::max(zeros({2, 0}), 1); }, {"max", "empty", "[2, 0]"}},
      {"max_0dim", [] { ops::max(scalar_tensor(1), 0); }, {"max", "1-D"}},
      {"argmax_dim_range", [] { ops::argmax(zeros({4}), 1); }, {"max", "dim 1 out of range"}},
      {"sum_to_bad_shape", [] { ops::sum_to(zeros({2, 3}), {4}); }, {"sum_to", "[2, 3]", "[4]"}},
      {"softmax_dim_range", [] { ops::softmax(zeros({2, 3}), 2); }, {"softmax: dim 2 out of range for a 2-D tensor"}},
      {"softmax_0dim", [] { ops::softmax(scalar_tensor(1), 0); }, {"softmax", "1-D"}},
      {"log_softmax_int64", [] { ops::log_softmax(zeros({2}, DType::Int64), 0); }, {"log_softmax", "int64"}},
      {"cross_entropy_logits_dims", [] { ops::cross_entropy(zeros({2, 3, 4}), zeros({2}, DType::Int64)); },
       {"cross_entropy", "logits [N, C]", "[2, 3, 4]"}},
      {"cross_entropy_targets_dtype", [] { ops::cross_entropy(zeros({2, 3}), zeros({2})); }, {"cross_entropy", "int64", "float32"}},
      {"cross_entropy_batch", [] { ops::cross_entropy(zeros({2, 3}), zeros({3}, DType::Int64)); },
       {"cross_entropy", "[3]", "[2, 3]"}},
      {"cross_entropy_target_range", [] { ops::cross_entropy(zeros({2, 3}), i64({0, 3})); },
       {"cross_entropy", "target 3", "position 1", "3 classes"}},
      {"cross_entropy_negative_target", [] { ops::cross_entropy(zeros({1, 3}), i64({-1})); }, {"cross_entropy", "target -1"}},
      {"matmul_inner", [] { ops::matmul(zeros({64, 784}), zeros({512, 10})); }, {"matmul: inner dimensions differ: [64, 784] x [512, 10]"}},
      {"matmul_inner_vec", [] { ops::matmul(zeros({3}), zeros({4, 2})); }, {"matmul: inner dimensions differ: [3] x [4, 2]"}},
      {"matmul_0dim", [] { ops::matmul(scalar_tensor(1), zeros({2})); }, {"matmul", "at least 1 dim", "[] x [2]"}},
      {"matmul_batch", [] { ops::matmul(zeros({2, 3, 4}), zeros({3, 4, 5})); }, {"matmul", "[2, 3, 4]", "[3, 4, 5]"}},
      {"matmul_dtype", [] { ops::matmul(zeros({2, 2}), zeros({2, 2}, DType::Float64)); }, {"matmul: dtype mismatch", "[2, 2]"}},
      {"matmul_int64", [] { ops::matmul(zeros({2, 2}, DType::Int64), zeros({2, 2}, DType::Int64)); }, {"matmul", "floating-point"}},
      {"cat_empty", [] { ops::cat({}, 0); }, {"cat", "non-empty"}},
      {"cat_shapes", [] { ops::cat({zeros({2, 3}), zeros({2, 4})}, 0); },
       {"cat: sizes must match except in dim 0", "tensor 1 has shape [2, 4]", "tensor 0 has [2, 3]"}},
      {"cat_ranks", [] { ops::cat({zeros({2, 3}), zeros({3})}, 0); }, {"cat", "[3]", "[2, 3]"}},
      {"cat_dtypes", [] { ops::cat({zeros({2}), zeros({2}, DType::Float64)}, 0); }, {"cat", "float64", "float32"}},
      {"cat_dim_range", [] { ops::cat({zeros({2})}, 1); }, {"cat", "dim 1 out of range"}},
      {"stack_shapes", [] { ops::stack({zeros({2}), zeros({3})}, 0); }, {"stack", "[3]", "[2]"}},
      {"index_select_range", [] { ops::index_select(zeros({3, 2}), 0, i64({0, 3})); },
       {"index_select", "index 3", "position 1", "size 3", "[3, 2]"}},
      {"index_select_dtype", [] { ops::index_select(zeros({3, 2}), 0, zeros({1})); }, {"index_select", "int64", "float32"}},
      {"index_select_2d_index", [] { ops::index_select(zeros({3, 2}), 0, i64({0, 1}, {1, 2})); }, {"index_select", "1-D", "[1, 2]"}},
      {"one_hot_range", [] { ops::one_hot(i64({0, 5}), 3); }, {"one_hot", "class 5", "3 classes"}},
      {"one_hot_dtype", [] { ops::one_hot(zeros({2}), 3); }, {"one_hot", "int64"}},
      {"view_incompatible", [] { ops::view(ops::transpose(zeros({2, 3}), 0, 1), {6}); }, {"view", "[3, 2]", "[6]", "reshape"}},
      {"copy_shapes", [] { ops::copy_(zeros({3}), zeros({2, 3})); }, {"copy_: cannot copy shape [2, 3] into [3]"}},
      // Float -> int64 of NaN, infinities or values outside [-2^63, 2^63) is undefined behaviour in C++.
      {"to_int64_nan", [] { ops::to(f64({1, std::nan("")}), DType::Int64); }, {"float64 value nan", "int64"}},
      {"to_int64_too_big", [] { ops::to(f64({0x1p63}), DType::Int64); }, {"float64 value 9.22337e+18", "int64"}},
      {"to_int64_too_small", [] { ops::to(f32({-1e30f}), DType::Int64); }, {"float32 value -1e+30", "int64"}},
      {"copy_int64_inf", [] { ops::copy_(zeros({2}, DType::Int64), f32({1, -INFINITY})); }, {"copy_", "-inf", "int64"}},
      {"fill_int64_nan", [] { full({2}, std::nan(""), DType::Int64); }, {"fill_", "nan", "int64"}},
      {"add_inplace_shapes", [] { ops::add_(zeros({3}), zeros({2, 3})); }, {"add_", "[2, 3]", "[3]"}},
      {"dropout_p", [] { Generator g; ops::dropout_mask(zeros({2}), 1.0, g); }, {"dropout", "[0, 1)", "1"}},
      {"undefined_input", [] { ops::exp(Tensor()); }, {"exp", "undefined"}},
      // sgd_step_: a momentum buffer exactly when there is momentum; one shape; one dtype.
      {"sgd_buffer_without_momentum", [] { ops::sgd_step_(ones({3}), ones({3}), zeros({3}), {.lr = 0.1}); },
       {"sgd_step_: a momentum buffer goes with momentum != 0, got a buffer and momentum 0"}},
      {"sgd_momentum_without_buffer", [] { ops::sgd_step_(ones({3}), ones({3}), Tensor(), {.lr = 0.1, .momentum = 0.9}); },
       {"sgd_step_", "got no buffer"}},
      {"sgd_shapes", [] { ops::sgd_step_(ones({3}), ones({4}), Tensor(), {.lr = 0.1}); },
       {"sgd_step_: parameter [3], gradient [4] must have one shape"}},
      {"sgd_buffer_shape", [] { ops::sgd_step_(ones({3}), ones({3}), zeros({2}), {.lr = 0.1, .momentum = 0.9}); },
       {"sgd_step_: parameter [3], gradient [3] and buffer [2] must have one shape"}},
      {"sgd_dtypes", [] { ops::sgd_step_(ones({3}), ones({3}, DType::Float64), Tensor(), {.lr = 0.1}); },
       {"sgd_step_", "must have one dtype, got float32, float64"}},
  };
}

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class OpErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(OpErrors, ThrowsErrorNamingOpAndShapes) {
  const ErrorCase& c = GetParam();
  try {
    c.run();
    FAIL() << c.name << ": no error thrown";
  } catch (const Error& e) {
    for (const std::string& p : c.message_parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << c.name << ": message\n  " << e.what()
                                                                 << "\ndoes not contain\n  " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpErrors, ::testing::ValuesIn(error_cases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

// ---- exact GEMMs against a naive reference (CUTLASS style: small integers) ----

Tensor small_ints(const Shape& shape, DType dtype, Generator& g) {
  Tensor t = empty(shape, dtype);
  Tensor d = empty(shape, DType::Float64);
  double* p = d.data_ptr<double>();
  for (int64_t i = 0; i < d.numel(); ++i) p[i] = static_cast<double>(static_cast<int64_t>(g.below(7)) - 3);
  ops::copy_(t, d);
  return t;
}

V naive_matmul(const V& a, const V& b, int64_t n, int64_t k, int64_t m) {
  V c(n * m, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * m + j] += a[i * k + p] * b[p * m + j];
  return c;
}

TEST(OpMatmul, ExactOnSmallIntegersEveryLayout) {
  Generator g(3);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (auto [n, k, m] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {33, 17, 29}, {64, 128, 48}, {5, 1, 7}, {1, 40, 1}}) {
      Tensor a = small_ints({n, k}, dt, g), b = small_ints({k, m}, dt, g);
      const V want = naive_matmul(a.to_vector<double>(), b.to_vector<double>(), n, k, m);
      // The same operands stored transposed (so the kernel sees column-major layouts).
      Tensor at = ops::transpose(ops::contiguous(ops::transpose(a, 0, 1)), 0, 1);
      Tensor bt = ops::transpose(ops::contiguous(ops::transpose(b, 0, 1)), 0, 1);
      for (const auto& [x, y] : std::vector<std::pair<Tensor, Tensor>>{{a, b}, {at, b}, {a, bt}, {at, bt}}) {
        Tensor c = ops::matmul(x, y);
        ASSERT_EQ(c.sizes(), (Shape{n, m}));
        EXPECT_EQ(c.to_vector<double>(), want) << dtype_name(dt) << " " << n << "x" << k << "x" << m;
      }
      // Batched: three copies with different values, and a broadcast right operand.
      Tensor a3 = small_ints({3, n, k}, dt, g);
      Tensor c3 = ops::matmul(a3, b);
      for (int64_t i = 0; i < 3; ++i)
        EXPECT_EQ(ops::select(c3, 0, i).to_vector<double>(),
                  naive_matmul(ops::select(a3, 0, i).to_vector<double>(), b.to_vector<double>(), n, k, m));
    }
  }
}

// ---- layout, dtype and thread-count invariance ----

// Ops run on one operand; each must give the same values for a non-contiguous view as for its
// contiguous copy: bit for bit, except the GEMMs (flagged true), where the BLAS picks a different
// kernel, and so a different summation order, for each operand layout.
struct LayoutOp {
  std::string name;
  std::function<Tensor(const Tensor&)> fn;
  bool gemm = false;
};

std::vector<LayoutOp> layout_ops() {
  return {
      {"exp", [](const Tensor& x) { return ops::exp(x); }},
      {"gelu", [](const Tensor& x) { return ops::gelu(x); }},
      {"log_exp", [](const Tensor& x) { return ops::log(ops::exp(x)); }},
      {"tanh", [](const Tensor& x) { return ops::tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return ops::sigmoid(x); }},
      {"add_self", [](const Tensor& x) { return ops::add(x, x); }},
      {"mul_row", [](const Tensor& x) { return ops::mul(x, ops::contiguous(ops::select(x, 0, 0))); }},
      {"sum0", [](const Tensor& x) { return ops::sum(x, {0}); }},
      {"sum1_keepdim", [](const Tensor& x) { return ops::sum(x, {1}, true); }},
      {"mean", [](const Tensor& x) { return ops::mean(x); }},
      {"max1", [](const Tensor& x) { return ops::max(x, 1).first; }},
      {"argmax0", [](const Tensor& x) { return ops::argmax(x, 0); }},
      {"softmax1", [](const Tensor& x) { return ops::softmax(x, 1); }},
      {"softmax0", [](const Tensor& x) { return ops::softmax(x, 0); }},
      {"log_softmax1", [](const Tensor& x) { return ops::log_softmax(x, 1); }},
      {"log_softmax0", [](const Tensor& x) { return ops::log_softmax(x, 0); }},
      {"matmul_xxT", [](const Tensor& x) { return ops::matmul(x, ops::transpose(x, 0, 1)); }, true},
      {"matmul_xTx", [](const Tensor& x) { return ops::matmul(ops::transpose(x, 0, 1), x); }, true},
      {"cat", [](const Tensor& x) { return ops::cat({x, x}, 1); }},
      {"index_select", [](const Tensor& x) { return ops::index_select(x, 1, i64({2, 0, 2})); }},
      {"where", [](const Tensor& x) { return ops::where(ops::gt(x, zeros({}, x.dtype())), x, ops::neg(x)); }},
      {"cross_entropy", [](const Tensor& x) { return ops::cross_entropy(x, i64({0, 1, 2, 3, 4, 0, 1})).first; }},
  };
}

TEST(OpInvariance, NonContiguousEqualsContiguous) {
  Generator g(11);
  Tensor base = randn({5, 7}, DType::Float64, &g);
  Tensor x = ops::transpose(base, 0, 1);  // [7, 5], strides [1, 7]
  ASSERT_FALSE(x.is_contiguous());
  Tensor xc = ops::contiguous(x);
  Tensor wide = randn({7, 10}, DType::Float64, &g);
  Tensor xs = ops::slice(wide, 1, 1, 10, 2);  // [7, 5], strides [10, 2]
  Tensor xsc = ops::contiguous(xs);
  for (const auto& [name, op, gemm] : layout_ops()) {
    for (const auto& [view, copy] : {std::pair{x, xc}, std::pair{xs, xsc}}) {
      const V a = op(view).to_vector<double>(), b = op(copy).to_vector<double>();
      ASSERT_EQ(a.size(), b.size()) << name;
      for (size_t i = 0; i < a.size(); ++i) {
        if (gemm) EXPECT_NEAR(a[i], b[i], 1e-13 * std::max(1.0, std::fabs(b[i]))) << name << " element " << i;
        else EXPECT_EQ(a[i], b[i]) << name << " element " << i << " strides " << shape_str(view.strides());
      }
    }
  }
}

TEST(OpInvariance, Float32AgreesWithFloat64) {
  Generator g(12);
  Tensor x64 = randn({7, 5}, DType::Float64, &g);
  Tensor x32 = ops::to(x64, DType::Float32);
  for (const auto& [name, op, gemm] : layout_ops()) {
    const V a = op(x64).to_vector<double>(), b = op(x32).to_vector<double>();
    ASSERT_EQ(a.size(), b.size()) << name;
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::max(1.0, std::fabs(a[i]))) << name << " element " << i;
  }
}

TEST(OpInvariance, SameResultForOneAndTwoThreads) {
  const int before = get_num_threads();
  Generator g(13);
  Tensor x = randn({512, 600}, DType::Float32, &g);  // 307200 elements: above the parallel grain
  Tensor y = randn({600}, DType::Float32, &g);
  Tensor xt = ops::transpose(randn({600, 512}, DType::Float32, &g), 0, 1);
  auto run_all = [&] {
    return std::vector<Tensor>{ops::gelu(x), ops::add(x, y), ops::mul(xt, x), ops::exp(xt),
                               ops::contiguous(xt), ops::softmax(x, 1), ops::sum(x, {0}), ops::where(ops::gt(x, y), x, y),
                               ops::log_softmax(x, 1), ops::tanh(x), ops::sigmoid(xt), ops::log(ops::abs(x))};
  };
  set_num_threads(1);
  ASSERT_EQ(get_num_threads(), 1);
  auto one = run_all();
  set_num_threads(2);
  ASSERT_EQ(get_num_threads(), 2);
  auto two = run_all();
  set_num_threads(before);
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].sizes(), two[i].sizes());
    Tensor a = ops::contiguous(one[i]), b = ops::contiguous(two[i]);
    EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << "result " << i;
  }
  EXPECT_THROW(set_num_threads(0), Error);
}

// Batched products with >= 2^18 multiply-adds run one GEMM per thread, each single-threaded:
// the same bits on 1 and 2 threads (docs/performance.md, Determinism), for plain, transposed
// and broadcast operands.
// c += a @ b: exact on small integers for every operand layout, k = 0 leaves c alone, and bad
// shapes, dtypes or a strided destination are errors naming them.
TEST(OpMatmul, AddmmAccumulatesExactlyEveryLayout) {
  Generator g(5);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (auto [n, k, m] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {33, 17, 29}, {64, 128, 48}, {1, 40, 1}}) {
      Tensor a = small_ints({n, k}, dt, g), b = small_ints({k, m}, dt, g), c0 = small_ints({n, m}, dt, g);
      V want = naive_matmul(a.to_vector<double>(), b.to_vector<double>(), n, k, m);
      const V c0v = c0.to_vector<double>();
      for (size_t i = 0; i < want.size(); ++i) want[i] += c0v[i];
      Tensor at = ops::transpose(ops::contiguous(ops::transpose(a, 0, 1)), 0, 1);
      Tensor bt = ops::transpose(ops::contiguous(ops::transpose(b, 0, 1)), 0, 1);
      for (const auto& [x, y] : std::vector<std::pair<Tensor, Tensor>>{{a, b}, {at, b}, {a, bt}, {at, bt}}) {
        Tensor c = ops::clone(c0);
        ops::addmm_(c, x, y);
        EXPECT_EQ(c.to_vector<double>(), want) << dtype_name(dt) << " " << n << "x" << k << "x" << m;
      }
    }
  }
  Tensor c = full({2, 3}, 7.0);
  ops::addmm_(c, zeros({2, 0}), zeros({0, 3}));
  EXPECT_EQ(c.to_vector<double>(), V(6, 7.0));
  const auto message = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { ops::addmm_(zeros({2, 3}), zeros({2, 4}), zeros({5, 3})); }).find("[2, 3] += [2, 4] @ [5, 3]"),
            std::string::npos);
  EXPECT_NE(message([] { ops::addmm_(zeros({2, 3}), zeros({2, 4}, DType::Float64), zeros({4, 3})); }).find("float32 += float64"),
            std::string::npos);
  EXPECT_NE(message([] { ops::addmm_(ops::transpose(zeros({3, 2}), 0, 1), zeros({2, 4}), zeros({4, 3})); })
                .find("must be contiguous"),
            std::string::npos);
}

TEST(OpInvariance, BatchedMatmulIsTheSameOnOneAndTwoThreads) {
  const int before = get_num_threads();
  Generator g(14);
  Tensor a = randn({6, 96, 64}, DType::Float32, &g), b = randn({6, 64, 80}, DType::Float32, &g);
  Tensor bt = ops::transpose(randn({6, 80, 64}, DType::Float32, &g), 1, 2);
  Tensor shared = randn({64, 80}, DType::Float32, &g);  // broadcast over the batch
  auto run_all = [&] {
    return std::vector<Tensor>{ops::matmul(a, b), ops::matmul(a, bt), ops::matmul(a, shared)};
  };
  set_num_threads(1);
  auto one = run_all();
  set_num_threads(2);
  auto two = run_all();
  set_num_threads(before);
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].sizes(), Shape({6, 96, 80}));
    EXPECT_EQ(std::memcmp(one[i].raw_data(), two[i].raw_data(), one[i].nbytes()), 0) << "result " << i;
  }
  // Batch 3 of the plain product against the 2-D product of its slices.
  Tensor ref = ops::matmul(ops::to(ops::select(a, 0, 3), DType::Float64), ops::to(ops::select(b, 0, 3), DType::Float64));
  EXPECT_LT(ops::max(ops::abs(ops::sub(ops::to(ops::select(two[0], 0, 3), DType::Float64), ref))).item(), 1e-4);
}

// ctest runs this program, test_gradcheck and test_transformer_ops twice: with OMP_NUM_THREADS=1
// and, as the threads2.* tests, with 2 (CMakeLists.txt). The second run must really have 2.
TEST(Threads, StartWithTheCountOmpNumThreadsAsks) {
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (env == nullptr) GTEST_SKIP() << "OMP_NUM_THREADS is not set";
  EXPECT_EQ(get_num_threads(), std::atoi(env));
}

TEST(OpRandom, DropoutMask) {
  Generator g(5);
  Tensor m = ops::dropout_mask(zeros({100000}, DType::Float64), 0.25, g);
  int64_t zeros_seen = 0;
  for (double v : m.to_vector<double>()) {
    if (v == 0) ++zeros_seen;
    else ASSERT_EQ(v, 1.0 / 0.75);
  }
  EXPECT_NEAR(static_cast<double>(zeros_seen) / 100000, 0.25, 0.01);
  Generator g1(5);
  EXPECT_EQ(ops::dropout_mask(zeros({100000}, DType::Float64), 0.25, g1).to_vector<double>(), m.to_vector<double>());
}

TEST(OpInPlace, AddAndScale) {
  Tensor a = f64({1, 2, 3, 4}, {2, 2});
  ops::add_(a, f64({10, 20}), 0.5);
  EXPECT_EQ(a.to_vector<double>(), (V{6, 12, 8, 14}));
  ops::mul_scalar_(a, 2);
  EXPECT_EQ(a.to_vector<double>(), (V{12, 24, 16, 28}));
  // In place through a view writes into the base.
  ops::add_(ops::select(a, 1, 0), f64({1, 1}));
  EXPECT_EQ(a.to_vector<double>(), (V{13, 24, 17, 28}));
}

}  // namespace
}  // namespace minipipe
