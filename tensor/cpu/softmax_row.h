// One contiguous row of softmax / log-softmax, shared by ops::softmax, ops::log_softmax
// (softmax.cpp) and the causal attention softmax (attention.cpp): max, exp and sum, then scale,
// each pass a vectorised loop over the row while it sits in L1.
//
// The max and the sum run in kLanes fixed lanes (element k goes to lane k % kLanes, the lanes
// combine in a fixed tree), so the result depends only on the row's values: not on the thread
// that computes it, its alignment, or the vector width the compiler picked.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "tensor/cpu/fast_math.h"

namespace minipipe::cpu {

inline constexpr int kLanes = 16;

// Lanes combined pairwise: lane j + w into lane j for w = 8, 4, 2, 1.
template <typename T, typename Op>
inline T combine_lanes(T (&acc)[kLanes], Op op) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = op(acc[j], acc[j + w]);
  return acc[0];
}

// max_k x[k] (NaNs skipped, as std::max would skip them after the first element).
template <typename T>
inline T row_max(const T* x, int64_t n) {
  T acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = -std::numeric_limits<T>::infinity();
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      const T v = x[k + j];
      acc[j] = v > acc[j] ? v : acc[j];
    }
  }
  for (int j = 0; k + j < n; ++j) acc[j] = x[k + j] > acc[j] ? x[k + j] : acc[j];
  return combine_lanes(acc, [](T a, T b) { return b > a ? b : a; });
}

// sum_k x[k] in the fixed lane order, added in double (float rows too: a 1000-term float sum
// would lose a few ulps that every output of the row then carries).
template <typename T>
inline double row_sum(const T* x, int64_t n) {
  double acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) acc[j] += static_cast<double>(x[k + j]);
  }
  for (int j = 0; k + j < n; ++j) acc[j] += static_cast<double>(x[k + j]);
  return combine_lanes(acc, [](double a, double b) { return a + b; });
}

// y[k] = exp(s (x[k] - m)) / sum_j exp(s (x[j] - m)), m = max_j x[j], s > 0; n >= 1; y may be x.
// Subtracting the max keeps exp in range (<= 1); entries at -inf get exactly 0.
template <typename T>
inline void softmax_row(const T* x, T* y, int64_t n, T s = T(1)) {
  const T m = row_max(x, n);
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) y[k] = fast_exp_upto89(s * (x[k] - m));
  const T inv = static_cast<T>(1.0 / row_sum(y, n));
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) y[k] *= inv;
}

// y[k] = (x[k] - m) - log(sum_j exp(x[j] - m)), m = max_j x[j]; n >= 1; y must not be x (it
// holds the exps in between).
template <typename T>
inline void log_softmax_row(const T* x, T* y, int64_t n) {
  const T m = row_max(x, n);
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) y[k] = fast_exp_upto89(x[k] - m);
  const T ls = static_cast<T>(std::log(row_sum(y, n)));  // once per row: libm's double log
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - m) - ls;
}

}  // namespace minipipe::cpu
