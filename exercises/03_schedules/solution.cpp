// Exercise 3, schedule generators: the reference solution is the project's own, in
// parallel/generators.cpp (gpipe and one_f_one_b, a screenful each): read it there.
#include "exercise.h"
#include "parallel/generators.h"

namespace exercises {

Program gpipe(int P, int M) { return minipipe::parallel::gpipe(P, M); }

Program one_f_one_b(int P, int M) { return minipipe::parallel::one_f_one_b(P, M); }

}  // namespace exercises
