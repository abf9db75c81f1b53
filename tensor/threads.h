// Intra-op threads: how many threads one op (a GEMM, a big elementwise loop) may use. Sets
// OpenMP's count, which both our loops and the OpenMP build of OpenBLAS follow.
#pragma once

namespace minipipe {

void set_num_threads(int n);
int get_num_threads();

}  // namespace minipipe
