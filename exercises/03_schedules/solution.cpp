// Exercise 3, schedule generators: the reference solution (parallel/generators.cpp, written out).
#include <algorithm>

#include "exercise.h"
#include "tensor/error.h"

namespace exercises {

namespace {
void check_sizes(const char* who, int P, int M) {
  MP_CHECK(P >= 1, who, ": need at least 1 pipeline rank, got P=", P);
  MP_CHECK(M >= 1, who, ": need at least 1 micro-batch, got M=", M);
}
}  // namespace

Program gpipe(int P, int M) {
  check_sizes("gpipe", P, M);
  Program p = Program::empty(P, P, M);
  for (int r = 0; r < P; ++r) {
    for (int m = 0; m < M; ++m) p.on(r).push_back({r, Op::F, m});
    for (int m = 0; m < M; ++m) p.on(r).push_back({r, Op::B, m});
  }
  return p;
}

Program one_f_one_b(int P, int M) {
  check_sizes("one_f_one_b", P, M);
  Program p = Program::empty(P, P, M);
  for (int r = 0; r < P; ++r) {
    auto& list = p.on(r);
    // Rank r's first backward needs micro-batch 0 to have gone through the P-r-1 ranks after it
    // and back: that many forwards fit before it (fewer if there are fewer micro-batches).
    const int warmup = std::min(P - r - 1, M);
    for (int m = 0; m < warmup; ++m) list.push_back({r, Op::F, m});
    for (int i = 0; i < M - warmup; ++i) {  // steady state: F of micro-batch warmup+i, then B of i
      list.push_back({r, Op::F, warmup + i});
      list.push_back({r, Op::B, i});
    }
    for (int m = M - warmup; m < M; ++m) list.push_back({r, Op::B, m});  // cool-down
  }
  return p;
}

}  // namespace exercises
