// Exercise 5, the micro-batch loop: YOUR code. Replace each EXERCISE_TODO (exercise.h says what
// each must do; README.md says what to read first), then grade them with
//   exercises/check.sh 5
#include "exercise.h"

#include "autograd/functions.h"
#include "exercises/todo.h"
#include "tensor/ops.h"

namespace exercises {

std::vector<Tensor> split_microbatches(const Tensor& t, int M) {
  EXERCISE_TODO("split_microbatches", "05_microbatches/stub.cpp");
}

double accumulate_gradients(minipipe::nn::Module& model, const Tensor& x, const Tensor& y, int M, const LossFn& loss,
                            uint64_t step) {
  EXERCISE_TODO("accumulate_gradients", "05_microbatches/stub.cpp");
}

}  // namespace exercises
