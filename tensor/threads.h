// Intra-op threads: how many threads one op (a GEMM, a big elementwise loop) may use. Sets
// OpenMP's count, which both our loops and the OpenMP build of OpenBLAS follow.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace minipipe {

void set_num_threads(int n);
int get_num_threads();

// Calls f(begin, end) over contiguous ranges covering [0, n): one range per thread when n is at
// least `grain` and no parallel region is already running, else f(0, n) on this thread. For loops
// whose iterations are independent (an optimizer's update), so the result is the same on any
// number of threads; a plain call, not an OpenMP region, below the grain (even an if(false)
// region costs a futex wake per call). f must not throw: an exception cannot leave an OpenMP region.
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= 1 || n < grain) {
    f(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(std::min<int64_t>(threads, n / std::max<int64_t>(grain / 2, 1))))
  {
    const int64_t k = omp_get_thread_num(), parts = omp_get_num_threads();
    f(n * k / parts, n * (k + 1) / parts);
  }
}

// First thing in a program's main(): unless the user chose how OpenMP threads wait
// (OMP_WAIT_POLICY or GOMP_SPINCOUNT set), re-executes the program with OMP_WAIT_POLICY=passive.
// On a shared, busy machine spinning waits made 2-thread training ~25x slower
// (docs/performance.md). It has to be a re-exec: libgomp reads its environment when it is
// loaded, before main(), so a setenv() in main() changes nothing (GOMP_SPINCOUNT stays 300000).
void init_runtime(char** argv);

}  // namespace minipipe
