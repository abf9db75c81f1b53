// CPU LayerNorm over the last dim, forward and backward side by side (as llm.c's
// layernorm_forward / layernorm_backward). The forward caches each row's mean and rstd for the
// backward. Rows are independent and run in parallel; dweight and dbias sum over rows, so for
// them the threads split the columns and each column is summed in row order (deterministic).
#include <cmath>

#include "tensor/cpu/loops.h"
#include "tensor/factory.h"
#include "tensor/cpu/kernels.h"
#include "tensor/op_checks.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {

// Columns [c0, c1) of thread t out of nt: how dweight / dbias split the work.
inline std::pair<int64_t, int64_t> column_range(int64_t C, int64_t t, int64_t nt) {
  return {C * t / nt, C * (t + 1) / nt};
}

// x: [rows, C] -> out [rows, C], mean, rstd: [rows]
template <typename T>
void layernorm_kernel(const T* px, const T* pw, const T* pb, T* po, T* pm, T* ps, int64_t rows, int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (rows * C >= cpu::kParallelGrain && !omp_in_parallel())
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = px + r * C;
    T* o = po + r * C;
    T m = 0;
#pragma omp simd reduction(+ : m)
    for (int64_t c = 0; c < C; ++c) m += xr[c];
    m /= static_cast<T>(C);
    T v = 0;  // two passes: sum of squared deviations, no cancellation
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
    v /= static_cast<T>(C);
    const T s = T(1) / std::sqrt(v + eps);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = (xr[c] - m) * s * pw[c] + pb[c];
    pm[r] = m;  // cache the mean and rstd for the backward pass
    ps[r] = s;
  }
}

// dout, x: [rows, C] -> dx [rows, C]; dw, db: [C] (zeroed by the caller)
template <typename T>
void layernorm_backward_kernel(const T* pg, const T* px, const T* pw, const T* pm, const T* ps, T* pdx, T* pdw,
                               T* pdb, int64_t rows, int64_t C) {
  const bool par = rows * C >= cpu::kParallelGrain && !omp_in_parallel();
  // dx: rows are independent.
#pragma omp parallel for schedule(static) if (par)
  for (int64_t r = 0; r < rows; ++r) {
    const T *g = pg + r * C, *xr = px + r * C;
    T* d = pdx + r * C;
    const T m = pm[r], s = ps[r];
    T dn_mean = 0, dn_xhat_mean = 0;
#pragma omp simd reduction(+ : dn_mean, dn_xhat_mean)
    for (int64_t c = 0; c < C; ++c) {
      const T dn = g[c] * pw[c];
      dn_mean += dn;
      dn_xhat_mean += dn * (xr[c] - m) * s;
    }
    dn_mean /= static_cast<T>(C);
    dn_xhat_mean /= static_cast<T>(C);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) d[c] = s * (g[c] * pw[c] - dn_mean - (xr[c] - m) * s * dn_xhat_mean);
  }
  // dweight, dbias: each thread owns a range of columns and walks every row in order.
#pragma omp parallel if (par)
  {
    const auto [c0, c1] = column_range(C, omp_get_thread_num(), omp_get_num_threads());
    for (int64_t r = 0; r < rows; ++r) {
      const T *g = pg + r * C, *xr = px + r * C;
      const T m = pm[r], s = ps[r];
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) {
        pdb[c] += g[c];
        pdw[c] += g[c] * (xr[c] - m) * s;
      }
    }
  }
}

}  // namespace

// x: [rows, C] (any leading dims) -> out [rows, C]; mean, rstd: [rows]
//   mean = sum_c x / C,  var = sum_c (x - mean)^2 / C,  rstd = 1 / sqrt(var + eps)
//   out = (x - mean) * rstd * w + b
std::tuple<Tensor, Tensor, Tensor> layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                             double eps) {
  const int64_t C = checks::layernorm("layernorm", x, weight);
  MP_CHECK(bias.sizes() == Shape{C} && bias.dtype() == x.dtype(), "layernorm: bias ", shape_str(bias.sizes()), " ",
           dtype_name(bias.dtype()), " must be [", C, "] ", dtype_name(x.dtype()));
  MP_CHECK(eps > 0, "layernorm: eps must be positive, got ", eps);
  Tensor xc = contiguous(x), wc = contiguous(weight), bc = contiguous(bias);
  const int64_t rows = xc.numel() / C;
  Tensor out = empty(x.sizes(), x.options());
  Tensor mean = empty({rows}, x.options()), rstd = empty({rows}, x.options());
  MP_DISPATCH_FLOAT(x.dtype(), "layernorm", [&] {
    using T = scalar_t;
    layernorm_kernel<T>(xc.data_ptr<T>(), wc.data_ptr<T>(), bc.data_ptr<T>(), out.data_ptr<T>(), mean.data_ptr<T>(),
                        rstd.data_ptr<T>(), rows, C, static_cast<T>(eps));
  });
  return {out, mean, rstd};
}

// dout, x: [rows, C]; with xhat = (x - mean) * rstd and dn = dout * w:
//   dbias = sum_rows dout,  dweight = sum_rows dout * xhat
//   dx = rstd * (dn - mean_c(dn) - xhat * mean_c(dn * xhat))
std::tuple<Tensor, Tensor, Tensor> layernorm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight,
                                                      const Tensor& mean, const Tensor& rstd) {
  const int64_t C = checks::layernorm("layernorm_backward", x, weight);
  MP_CHECK(dout.sizes() == x.sizes() && dout.dtype() == x.dtype(), "layernorm_backward: grad ",
           shape_str(dout.sizes()), " does not match input ", shape_str(x.sizes()));
  const int64_t rows = x.numel() / C;
  MP_CHECK(mean.numel() == rows && rstd.numel() == rows, "layernorm_backward: mean ", shape_str(mean.sizes()),
           " and rstd ", shape_str(rstd.sizes()), " must have ", rows, " rows");
  Tensor gc = contiguous(dout), xc = contiguous(x), wc = contiguous(weight);
  Tensor mc = contiguous(mean), sc = contiguous(rstd);
  Tensor dx = empty(x.sizes(), x.options());
  Tensor dw = zeros({C}, x.options()), db = zeros({C}, x.options());
  MP_DISPATCH_FLOAT(x.dtype(), "layernorm_backward", [&] {
    using T = scalar_t;
    layernorm_backward_kernel<T>(gc.data_ptr<T>(), xc.data_ptr<T>(), wc.data_ptr<T>(), mc.data_ptr<T>(),
                                 sc.data_ptr<T>(), dx.data_ptr<T>(), dw.data_ptr<T>(), db.data_ptr<T>(), rows, C);
  });
  return {dx, dw, db};
}

}  // namespace minipipe::cpu
