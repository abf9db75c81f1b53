// Exercise 4, deadlocks: YOUR code. Replace each EXERCISE_TODO with the lowering (exercise.h says
// what each must do; README.md says what to read first), then grade them with
//   exercises/check.sh 4
#include "exercise.h"

#include "exercises/todo.h"

namespace exercises {

Program naive_lowering(const Program& compute_only) {
  EXERCISE_TODO("naive_lowering", "04_deadlocks/stub.cpp");
}

Program deadlock_free_lowering(const Program& compute_only) {
  EXERCISE_TODO("deadlock_free_lowering", "04_deadlocks/stub.cpp");
}

}  // namespace exercises
