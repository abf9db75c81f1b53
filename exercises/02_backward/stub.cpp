// Exercise 2, a backward: YOUR code. Replace each EXERCISE_TODO with the gradients (exercise.h
// says what each returns; README.md says what to read first), then grade them with
//   exercises/check.sh 2
// The raw ops you need are in tensor/ops.h (minipipe::ops::mul, div, neg, sum_to, ...).
#include "exercise.h"

#include "exercises/todo.h"
#include "tensor/ops.h"

namespace exercises {

std::pair<Tensor, Tensor> add_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  EXERCISE_TODO("add_backward", "02_backward/stub.cpp");
}

std::pair<Tensor, Tensor> sub_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  EXERCISE_TODO("sub_backward", "02_backward/stub.cpp");
}

std::pair<Tensor, Tensor> mul_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  EXERCISE_TODO("mul_backward", "02_backward/stub.cpp");
}

std::pair<Tensor, Tensor> div_backward(const Tensor& grad, const Tensor& a, const Tensor& b) {
  EXERCISE_TODO("div_backward", "02_backward/stub.cpp");
}

}  // namespace exercises
