// Exercise 2, a backward: the gradients of the broadcasting binary arithmetic family (add, sub,
// mul, div), written by the student (exercises/02_backward/README.md). The grader wraps each into
// a differentiable op with autograd::record and checks it with the float64 gradcheck.
#pragma once

#include <utility>

#include "tensor/tensor.h"

namespace exercises {

using minipipe::Tensor;

// For y = op(a, b), with a and b broadcast against each other (a: [2, 3] and b: [3] gives y:
// [2, 3]) and grad = dL/dy (y's shape), return {dL/da, dL/db}: each of its input's shape exactly
// (sum the gradient over the dims the input was broadcast along), its input's dtype.
std::pair<Tensor, Tensor> add_backward(const Tensor& grad, const Tensor& a, const Tensor& b);
std::pair<Tensor, Tensor> sub_backward(const Tensor& grad, const Tensor& a, const Tensor& b);
std::pair<Tensor, Tensor> mul_backward(const Tensor& grad, const Tensor& a, const Tensor& b);
std::pair<Tensor, Tensor> div_backward(const Tensor& grad, const Tensor& a, const Tensor& b);

}  // namespace exercises
