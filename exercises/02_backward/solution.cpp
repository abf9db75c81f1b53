// Exercise 2, a backward: the reference solution (the same rules as autograd/ops_elementwise.cpp).
// Each gradient is the local derivative times grad, summed back to its input's shape: broadcasting
// copied the input along some dims, so its gradient adds up every copy's contribution.
#include "exercise.h"
#include "tensor/ops.h"

namespace exercises {

namespace ops = minipipe::ops;

std::pair<Tensor, Tensor> add_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  // d(a+b)/da = 1, d(a+b)/db = 1
  return {ops::sum_to(grad, a.sizes()), ops::sum_to(grad, b.sizes())};
}

std::pair<Tensor, Tensor> sub_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  // d(a-b)/da = 1, d(a-b)/db = -1
  return {ops::sum_to(grad, a.sizes()), ops::sum_to(ops::neg(grad), b.sizes())};
}

std::pair<Tensor, Tensor> mul_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  // d(ab)/da = b, d(ab)/db = a
  return {ops::sum_to(ops::mul(grad, b), a.sizes()), ops::sum_to(ops::mul(grad, a), b.sizes())};
}

std::pair<Tensor, Tensor> div_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
  const Tensor g_over_b = ops::div(grad, b);
  return {ops::sum_to(g_over_b, a.sizes()), ops::sum_to(ops::neg(ops::div(ops::mul(g_over_b, a), b)), b.sizes())};
}

}  // namespace exercises
