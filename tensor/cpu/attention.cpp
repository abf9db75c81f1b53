// CPU causal attention. causal_softmax: the scale, the causal mask and the softmax in one pass
// over the scores q k^T (only the unmasked triangle is touched), and its backward. Then the whole
// attention of a GPT block from its fused QKV projection, forward and backward side by side as
// llm.c's attention_forward / attention_backward: one (batch, head) per task, GEMMs reading q, k,
// v straight out of qkv and writing out / dqkv in place through their leading dimensions (BLAS
// calls as in matmul.cpp), the scores of one head staying in cache.
#ifdef MINIPIPE_BLAS
#include <cblas.h>
#endif

#include <Eigen/Core>
#include <cmath>
#include <type_traits>
#include <vector>

#include "tensor/cpu/loops.h"
#include "tensor/cpu/softmax_row.h"
#include "tensor/factory.h"
#include "tensor/cpu/kernels.h"
#include "tensor/op_checks.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {

// One row of tk scores of which the first n are visible; in place allowed (y == x):
//   y[j] = exp(s (x[j] - max)) / sum  for j < n,  0 after
template <typename T>
inline void softmax_row(const T* x, T* y, int64_t n, int64_t tk, T s) {
  cpu::softmax_row(x, y, n, s);  // exp(s (x - max)) <= 1: no overflow; fixed-order sum
  for (int64_t j = n; j < tk; ++j) y[j] = T(0);  // the future: exactly zero weight
}

// d[j] = s y[j] (g[j] - sum_k g[k] y[k]) for j < n, 0 after; in place allowed (d == g).
template <typename T>
inline void softmax_row_backward(const T* g, const T* y, T* d, int64_t n, int64_t tk, T s) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < n; ++j) dot += g[j] * y[j];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) d[j] = s * y[j] * (g[j] - dot);
  for (int64_t j = n; j < tk; ++j) d[j] = T(0);
}

// Row r of [rows, tk] is query i = r % tq and sees its first n = i + 1 + tk - tq keys.
template <typename T>
void causal_softmax_kernel(const T* px, T* py, int64_t rows, int64_t tq, int64_t tk, T s) {
#pragma omp parallel for schedule(static) if (rows * tk >= cpu::kParallelGrain && !omp_in_parallel())
  for (int64_t r = 0; r < rows; ++r) softmax_row(px + r * tk, py + r * tk, r % tq + 1 + (tk - tq), tk, s);
}

template <typename T>
void causal_softmax_backward_kernel(const T* pg, const T* py, T* pd, int64_t rows, int64_t tq, int64_t tk, T s) {
#pragma omp parallel for schedule(static) if (rows * tk >= cpu::kParallelGrain && !omp_in_parallel())
  for (int64_t r = 0; r < rows; ++r)
    softmax_row_backward(pg + r * tk, py + r * tk, pd + r * tk, r % tq + 1 + (tk - tq), tk, s);
}

}  // namespace

// row r of att: [..., Tq, Tk] is query i = r % Tq; it sees n = i + 1 + Tk - Tq keys:
//   y[j] = exp(s x[j] - max_k s x[k]) / sum_k exp(s x[k] - max)  for j < n,  y[j] = 0 otherwise
Tensor causal_softmax(const Tensor& att, double scale) {
  const auto [tq, tk] = checks::scores("causal_softmax", att, scale);
  Tensor x = contiguous(att);
  Tensor y = empty(att.sizes(), att.options());
  const int64_t rows = tk == 0 ? 0 : x.numel() / tk;
  MP_DISPATCH_FLOAT(att.dtype(), "causal_softmax", [&] {
    causal_softmax_kernel<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), rows, tq, tk,
                                    static_cast<scalar_t>(scale));
  });
  return y;
}

// g, y: [..., Tq, Tk];  dx[j] = s y[j] (g[j] - sum_k g[k] y[k]) for j < n, 0 for the masked j
Tensor causal_softmax_backward(const Tensor& grad, const Tensor& y, double scale) {
  const auto [tq, tk] = checks::scores("causal_softmax_backward", y, scale);
  MP_CHECK(grad.sizes() == y.sizes() && grad.dtype() == y.dtype(), "causal_softmax_backward: grad ",
           shape_str(grad.sizes()), " does not match output ", shape_str(y.sizes()));
  Tensor gc = contiguous(grad), yc = contiguous(y);
  Tensor dx = empty(y.sizes(), y.options());
  const int64_t rows = tk == 0 ? 0 : yc.numel() / tk;
  MP_DISPATCH_FLOAT(y.dtype(), "causal_softmax_backward", [&] {
    causal_softmax_backward_kernel<scalar_t>(gc.data_ptr<scalar_t>(), yc.data_ptr<scalar_t>(),
                                             dx.data_ptr<scalar_t>(), rows, tq, tk, static_cast<scalar_t>(scale));
  });
  return dx;
}

// ---- attention of a GPT block: qkv [B, T, 3C] -> out [B, T, C] ----

namespace {

template <typename T, int Order>
using ConstMat = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0, Eigen::OuterStride<>>;
template <typename T>
using OutMat = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;

// c[n, m] = op(a) op(b), all row-major with leading dims. TA: a is stored [k, n] and used
// transposed (a column-major [n, k] view of the same memory); TB likewise for b stored [m, k].
// With MINIPIPE_BLAS one cblas call with beta = 0, as matmul.cpp; otherwise Eigen's own GEMM.
template <bool TA, bool TB, typename T>
void gemm(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t n, int64_t k, int64_t m) {
#ifdef MINIPIPE_BLAS
  const auto ta = TA ? CblasTrans : CblasNoTrans, tb = TB ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, n, m, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, n, m, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
#else
  constexpr int OA = TA ? Eigen::ColMajor : Eigen::RowMajor, OB = TB ? Eigen::ColMajor : Eigen::RowMajor;
  ConstMat<T, OA> A(a, n, k, Eigen::OuterStride<>(lda));
  ConstMat<T, OB> B(b, k, m, Eigen::OuterStride<>(ldb));
  OutMat<T> C(c, n, m, Eigen::OuterStride<>(ldc));
  C.noalias() = A * B;
#endif
}

using checks::Heads;

// Per (b, h): q, k, v are [T, hd] blocks of qkv at column offsets h hd, C + h hd, 2C + h hd
// (leading dim 3C); the head's output is the [T, hd] block of out at h hd (leading dim C).
//   att = causal_softmax(q k^T / sqrt(hd)): [T, T];  y = (att * mask) v
template <typename T>
void attention_forward_kernel(const T* qkv, T* out, T* att, const T* mask, const Heads& h) {
  const int64_t T_ = h.T, C3 = 3 * h.C, tt = T_ * T_;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(h.hd)));
#pragma omp parallel if (h.B * h.H * tt * h.hd >= (int64_t{1} << 18) && !omp_in_parallel())
  {
    std::vector<T> dropped(mask ? tt : 0);  // att * mask, one head at a time
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < h.B * h.H; ++bh) {
      const int64_t b = bh / h.H, hh = bh % h.H;
      const T* q = qkv + b * T_ * C3 + hh * h.hd;
      const T *k = q + h.C, *v = q + 2 * h.C;
      T* a = att + bh * tt;
      gemm<false, true>(q, C3, k, C3, a, T_, T_, h.hd, T_);  // scores [T, T] = q [T, hd] k^T
      for (int64_t i = 0; i < T_; ++i) softmax_row(a + i * T_, a + i * T_, i + 1, T_, scale);
      const T* w = a;
      if (mask) {
        const T* mk = mask + bh * tt;
        for (int64_t j = 0; j < tt; ++j) dropped[j] = a[j] * mk[j];
        w = dropped.data();
      }
      gemm<false, false>(w, T_, v, C3, out + b * T_ * h.C + hh * h.hd, h.C, T_, T_, h.hd);  // [T, hd]
    }
  }
}

// Per (b, h), with a = att * mask and dy the head's [T, hd] block of dout:
//   dv = a^T dy,  da = dy v^T,  ds = causal_softmax_backward(da * mask) (carries 1/sqrt(hd)),
//   dq = ds k,  dk = ds^T q  — each written into its [T, hd] block of dqkv (leading dim 3C).
template <typename T>
void attention_backward_kernel(const T* dout, const T* qkv, const T* att, const T* mask, T* dqkv, const Heads& h) {
  const int64_t T_ = h.T, C3 = 3 * h.C, tt = T_ * T_;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(h.hd)));
#pragma omp parallel if (h.B * h.H * tt * h.hd >= (int64_t{1} << 18) && !omp_in_parallel())
  {
    std::vector<T> ds(tt), dropped(mask ? tt : 0);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < h.B * h.H; ++bh) {
      const int64_t b = bh / h.H, hh = bh % h.H;
      const T* q = qkv + b * T_ * C3 + hh * h.hd;
      const T *k = q + h.C, *v = q + 2 * h.C;
      const T* dy = dout + b * T_ * h.C + hh * h.hd;
      T* dq = dqkv + b * T_ * C3 + hh * h.hd;
      T *dk = dq + h.C, *dv = dq + 2 * h.C;
      const T* a = att + bh * tt;
      const T* mk = mask ? mask + bh * tt : nullptr;
      const T* w = a;
      if (mk) {
        for (int64_t j = 0; j < tt; ++j) dropped[j] = a[j] * mk[j];
        w = dropped.data();
      }
      gemm<true, false>(w, T_, dy, h.C, dv, C3, T_, T_, h.hd);       // dv [T, hd] = a^T dy
      gemm<false, true>(dy, h.C, v, C3, ds.data(), T_, T_, h.hd, T_);  // da [T, T] = dy v^T
      for (int64_t i = 0; i < T_; ++i) {
        T* row = ds.data() + i * T_;
        if (mk)
          for (int64_t j = 0; j <= i; ++j) row[j] *= mk[i * T_ + j];
        softmax_row_backward(row, a + i * T_, row, i + 1, T_, scale);
      }
      gemm<false, false>(ds.data(), T_, k, C3, dq, C3, T_, T_, h.hd);  // dq [T, hd] = ds k
      gemm<true, false>(ds.data(), T_, q, C3, dk, C3, T_, T_, h.hd);   // dk [T, hd] = ds^T q
    }
  }
}

}  // namespace

std::pair<Tensor, Tensor> attention_forward(const Tensor& qkv, int64_t n_head, const Tensor& mask) {
  const Heads h = checks::qkv("attention_forward", qkv, n_head);
  checks::attention_mask("attention_forward", mask, h, qkv);
  Tensor x = contiguous(qkv), mk = mask.defined() ? contiguous(mask) : Tensor();
  Tensor out = empty({h.B, h.T, h.C}, qkv.options());
  Tensor att = empty({h.B, h.H, h.T, h.T}, qkv.options());  // cached for the backward pass
  MP_DISPATCH_FLOAT(qkv.dtype(), "attention_forward", [&] {
    using T = scalar_t;
    attention_forward_kernel<T>(x.data_ptr<T>(), out.data_ptr<T>(), att.data_ptr<T>(),
                                mk.defined() ? mk.data_ptr<T>() : nullptr, h);
  });
  return {out, att};
}

Tensor attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head, const Tensor& mask) {
  const Heads h = checks::qkv("attention_backward", qkv, n_head);
  MP_CHECK(dout.sizes() == Shape({h.B, h.T, h.C}) && dout.dtype() == qkv.dtype(), "attention_backward: grad ",
           shape_str(dout.sizes()), " does not match qkv ", shape_str(qkv.sizes()));
  MP_CHECK(att.sizes() == Shape({h.B, h.H, h.T, h.T}) && att.dtype() == qkv.dtype(), "attention_backward: att ",
           shape_str(att.sizes()), " does not match qkv ", shape_str(qkv.sizes()), " with ", n_head, " heads");
  checks::attention_mask("attention_backward", mask, h, qkv);
  Tensor g = contiguous(dout), x = contiguous(qkv), a = contiguous(att);
  Tensor mk = mask.defined() ? contiguous(mask) : Tensor();
  Tensor dqkv = empty(qkv.sizes(), qkv.options());  // every element is written: no memset
  MP_DISPATCH_FLOAT(qkv.dtype(), "attention_backward", [&] {
    using T = scalar_t;
    attention_backward_kernel<T>(g.data_ptr<T>(), x.data_ptr<T>(), a.data_ptr<T>(),
                                 mk.defined() ? mk.data_ptr<T>() : nullptr, dqkv.data_ptr<T>(), h);
  });
  return dqkv;
}

}  // namespace minipipe::cpu
