// set_num_threads / get_num_threads over OpenMP and OpenBLAS, and the programs' OpenMP wait policy.
#include "tensor/threads.h"

#include <omp.h>
#include <unistd.h>

#include <cstdlib>

#include "tensor/error.h"

extern "C" void openblas_set_num_threads(int);

namespace minipipe {

void set_num_threads(int n) {
  MP_CHECK(n >= 1, "set_num_threads: expected at least 1 thread, got ", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

void init_runtime(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);  // set before the exec: the new process sees it, no loop
  ::execv("/proc/self/exe", argv);
  // Only reached when the exec failed (no /proc): carry on with OpenMP's default waits.
}

}  // namespace minipipe
