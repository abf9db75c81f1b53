// Intra-op threads: how many threads one op (a GEMM, a big elementwise loop) may use. Sets
// OpenMP's count, which both our loops and the OpenMP build of OpenBLAS follow.
#pragma once

namespace minipipe {

void set_num_threads(int n);
int get_num_threads();

// First thing in a program's main(): unless the user chose how OpenMP threads wait
// (OMP_WAIT_POLICY or GOMP_SPINCOUNT set), re-executes the program with OMP_WAIT_POLICY=passive.
// On a shared, busy machine spinning waits made 2-thread training ~25x slower
// (docs/performance.md). It has to be a re-exec: libgomp reads its environment when it is
// loaded, before main(), so a setenv() in main() changes nothing (GOMP_SPINCOUNT stays 300000).
void init_runtime(char** argv);

}  // namespace minipipe
