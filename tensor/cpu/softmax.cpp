// CPU softmax family over one dim: softmax, log_softmax, their backwards, and the fused
// cross entropy (log-softmax + NLL, mean over the batch). Rows are made contiguous along `dim`
// first (a no-op for the usual dim = -1); rows are independent, so they run in parallel, each
// through the vectorised row kernels of softmax_row.h.
#include <cmath>

#include "tensor/cpu/loops.h"
#include "tensor/cpu/softmax_row.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {

// Moves `dim` last and makes the tensor contiguous: the result is [rows, n].
Tensor rows_last(const Tensor& t, int64_t dim) {
  if (dim == t.dim() - 1) return contiguous(t);
  return contiguous(transpose(t, dim, t.dim() - 1));
}

// The inverse of rows_last for a result computed in that layout.
Tensor rows_back(const Tensor& r, int64_t dim, int64_t ndim) {
  return dim == ndim - 1 ? r : transpose(r, dim, ndim - 1);
}

template <typename Fn>
void parallel_rows(int64_t rows, int64_t n, Fn fn) {
#pragma omp parallel for schedule(static) if (rows * n >= cpu::kParallelGrain && !omp_in_parallel())
  for (int64_t r = 0; r < rows; ++r) fn(r);
}

template <bool kLog>
Tensor softmax_impl(const Tensor& t, int64_t dim, const char* op) {
  MP_CHECK(t.dim() > 0, op, ": expected at least a 1-D tensor");
  dim = wrap_dim(dim, t.dim(), op);
  Tensor x = rows_last(t, dim);
  Tensor y = empty(x.sizes(), x.options());
  const int64_t n = x.size(-1), rows = n == 0 ? 0 : x.numel() / n;
  MP_DISPATCH_FLOAT(t.dtype(), op, [&] {
    using T = scalar_t;
    const T* px = x.data_ptr<T>();
    T* py = y.data_ptr<T>();
    parallel_rows(rows, n, [=](int64_t r) {
      if (kLog) cpu::log_softmax_row(px + r * n, py + r * n, n);
      else cpu::softmax_row(px + r * n, py + r * n, n);
    });
  });
  return rows_back(y, dim, t.dim());
}

template <bool kLog>
Tensor softmax_backward_impl(const Tensor& g, const Tensor& y, int64_t dim, const char* op) {
  MP_CHECK(g.sizes() == y.sizes(), op, ": grad shape ", shape_str(g.sizes()),
           " differs from output shape ", shape_str(y.sizes()));
  dim = wrap_dim(dim, y.dim(), op);
  Tensor gr = rows_last(g, dim), yr = rows_last(y, dim);
  Tensor dx = empty(yr.sizes(), yr.options());
  const int64_t n = yr.size(-1), rows = n == 0 ? 0 : yr.numel() / n;
  MP_DISPATCH_FLOAT(y.dtype(), op, [&] {
    using T = scalar_t;
    const T *pg = gr.data_ptr<T>(), *py = yr.data_ptr<T>();
    T* pd = dx.data_ptr<T>();
    parallel_rows(rows, n, [=](int64_t r) {
      const T *gv = pg + r * n, *yv = py + r * n;
      T* d = pd + r * n;
      double dot = 0;
      if (kLog) {
        // y = log_softmax(x): dx = g - softmax(x) * sum(g)
        for (int64_t k = 0; k < n; ++k) dot += gv[k];
        const T sg = static_cast<T>(dot);
        _Pragma("omp simd")  // (a #pragma cannot sit inside the dispatch macro's argument)
        for (int64_t k = 0; k < n; ++k) d[k] = std::fma(-cpu::fast_exp(yv[k]), sg, gv[k]);
      } else {
        // y = softmax(x): dx = y * (g - sum(g * y))
        for (int64_t k = 0; k < n; ++k) dot += static_cast<double>(gv[k]) * yv[k];
        for (int64_t k = 0; k < n; ++k) d[k] = yv[k] * (gv[k] - static_cast<T>(dot));
      }
    });
  });
  return rows_back(dx, dim, y.dim());
}

void check_targets(const Tensor& logits, const Tensor& targets, const char* op) {
  MP_CHECK(logits.dim() == 2, op, ": expected logits [N, C], got ", shape_str(logits.sizes()));
  MP_CHECK(targets.dtype() == DType::Int64, op, ": targets must be int64, got ", dtype_name(targets.dtype()));
  MP_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), op, ": targets ",
           shape_str(targets.sizes()), " do not match logits ", shape_str(logits.sizes()));
  MP_CHECK(logits.size(0) > 0, op, ": empty batch");
}

}  // namespace

Tensor softmax(const Tensor& t, int64_t dim) { return softmax_impl<false>(t, dim, "softmax"); }
Tensor log_softmax(const Tensor& t, int64_t dim) { return softmax_impl<true>(t, dim, "log_softmax"); }
Tensor softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  return softmax_backward_impl<false>(g, y, dim, "softmax_backward");
}
Tensor log_softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  return softmax_backward_impl<true>(g, y, dim, "log_softmax_backward");
}

std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& targets) {
  check_targets(logits, targets, "cross_entropy");
  const int64_t n = logits.size(0), c = logits.size(1);
  Tensor tg = contiguous(targets);
  const int64_t* pt = tg.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    MP_CHECK(pt[i] >= 0 && pt[i] < c, "cross_entropy: target ", pt[i], " at position ", i,
             " is out of range for ", c, " classes");
  Tensor logp = log_softmax(logits, 1);
  Tensor loss = empty({}, logits.options());
  MP_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    const scalar_t* lp = logp.data_ptr<scalar_t>();
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total -= lp[i * c + pt[i]];
    *loss.data_ptr<scalar_t>() = static_cast<scalar_t>(total / static_cast<double>(n));
  });
  return {loss, exp(logp)};
}

Tensor cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& targets) {
  check_targets(probs, targets, "cross_entropy_backward");
  const int64_t n = probs.size(0), c = probs.size(1);
  Tensor tg = contiguous(targets);
  const int64_t* pt = tg.data_ptr<int64_t>();
  Tensor dx = mul(contiguous(probs), to(grad, probs.dtype()));
  mul_scalar_(dx, 1.0 / static_cast<double>(n));
  const double g = grad.item() / static_cast<double>(n);
  MP_DISPATCH_FLOAT(probs.dtype(), "cross_entropy_backward", [&] {
    scalar_t* pd = dx.data_ptr<scalar_t>();
    for (int64_t i = 0; i < n; ++i) pd[i * c + pt[i]] -= static_cast<scalar_t>(g);
  });
  return dx;
}

}  // namespace minipipe::cpu
