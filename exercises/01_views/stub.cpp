// Exercise 1, strides and views: YOUR code. Replace each EXERCISE_TODO with the function's body
// (exercise.h says what each must do; README.md says what to read first), then grade it with
//   exercises/check.sh 1
#include "exercise.h"

#include "exercises/todo.h"
#include "tensor/ops.h"

namespace exercises {

Shape row_major_strides(const Shape& sizes) {
  EXERCISE_TODO("row_major_strides", "01_views/stub.cpp");
}

Tensor transpose_view(const Tensor& t, int64_t d0, int64_t d1) {
  EXERCISE_TODO("transpose_view", "01_views/stub.cpp");
}

Tensor contiguous_copy(const Tensor& t) {
  EXERCISE_TODO("contiguous_copy", "01_views/stub.cpp");
}

}  // namespace exercises
