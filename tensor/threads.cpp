// set_num_threads / get_num_threads over OpenMP and OpenBLAS.
#include "tensor/threads.h"

#include <omp.h>

#include "tensor/error.h"

extern "C" void openblas_set_num_threads(int);

namespace minipipe {

void set_num_threads(int n) {
  MP_CHECK(n >= 1, "set_num_threads: expected at least 1 thread, got ", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace minipipe
