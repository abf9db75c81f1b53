// The strided loop every CPU elementwise kernel runs on: N operands (output first) walked over
// one shape, each with its own strides (0 on broadcast dims). Dims that are contiguous for all
// operands are merged first, so a contiguous op becomes one flat loop the compiler vectorises.
// Large loops split into contiguous ranges of the output, one per OpenMP thread; every element
// is computed independently, so results do not depend on the thread count.
#pragma once

#include <omp.h>

#include <array>
#include <initializer_list>

#include "tensor/tensor.h"

namespace minipipe::cpu {

// An op writing into `t` must not meet the same element twice (an expanded dim: stride 0).
inline void check_writable(const char* op, const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    MP_CHECK(t.stride(d) != 0 || t.size(d) <= 1, op, ": cannot write into a tensor whose dim ", d,
             " is expanded (stride 0, shape ", shape_str(t.sizes()), "); clone() it first");
}

inline constexpr int64_t kParallelGrain = 32768;  // elements below which one thread is faster

template <int N>
struct LoopGeometry {
  Shape sizes;                     // coalesced, at least one dim
  std::array<Shape, N> strides;    // per operand, in elements
};

// Broadcast strides of `t` viewed with `shape` (t's dims aligned right).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

template <int N>
LoopGeometry<N> coalesce(const Shape& sizes, const std::array<Shape, N>& strides) {
  LoopGeometry<N> g;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 1) continue;  // size-1 dims never move the pointer
    bool merge = !g.sizes.empty();
    for (int k = 0; k < N && merge; ++k)
      merge = g.strides[k].back() == strides[k][d] * sizes[d];
    if (merge) {
      g.sizes.back() *= sizes[d];
      for (int k = 0; k < N; ++k) g.strides[k].back() = strides[k][d];
    } else {
      g.sizes.push_back(sizes[d]);
      for (int k = 0; k < N; ++k) g.strides[k].push_back(strides[k][d]);
    }
  }
  if (g.sizes.empty()) {
    g.sizes.push_back(1);
    for (int k = 0; k < N; ++k) g.strides[k].push_back(0);
  }
  return g;
}

// Calls inner(offsets, n, inner_strides) for runs along the innermost dim covering [begin, end).
template <int N, typename Inner>
void loop_range(const LoopGeometry<N>& g, int64_t begin, int64_t end, Inner& inner) {
  const int64_t nd = static_cast<int64_t>(g.sizes.size());
  Shape idx(nd);
  int64_t rem = begin;
  for (int64_t d = nd - 1; d >= 0; --d) {
    idx[d] = rem % g.sizes[d];
    rem /= g.sizes[d];
  }
  std::array<int64_t, N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = g.strides[k][nd - 1];
  int64_t pos = begin;
  while (pos < end) {
    std::array<int64_t, N> off{};
    for (int k = 0; k < N; ++k)
      for (int64_t d = 0; d < nd; ++d) off[k] += idx[d] * g.strides[k][d];
    const int64_t n = std::min(g.sizes[nd - 1] - idx[nd - 1], end - pos);
    inner(off, n, inner_strides);
    pos += n;
    idx[nd - 1] += n;
    for (int64_t d = nd - 1; d > 0 && idx[d] == g.sizes[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

template <int N, typename Inner>
void strided_loop(const Shape& sizes, const std::array<Shape, N>& strides, Inner inner) {
  const int64_t numel = shape_numel(sizes);
  if (numel == 0) return;
  LoopGeometry<N> g = coalesce<N>(sizes, strides);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (numel < kParallelGrain || threads == 1) {
    loop_range<N>(g, 0, numel, inner);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = numel * t / nt, end = numel * (t + 1) / nt;
    Inner local = inner;
    loop_range<N>(g, begin, end, local);
  }
}

}  // namespace minipipe::cpu
