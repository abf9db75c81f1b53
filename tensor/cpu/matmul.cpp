// CPU matrix products over tensor storage (no copies for row-major or transposed operands).
// With MINIPIPE_BLAS (the default) each GEMM is one cblas_sgemm/dgemm call into OpenBLAS;
// without it, Eigen's own GEMM through Eigen::Map. docs/performance.md has the measurements
// behind that choice.
#include <Eigen/Core>
#ifdef MINIPIPE_BLAS
#include <cblas.h>
#endif

#include "tensor/cpu/loops.h"
#include "tensor/cpu/kernels.h"
#include "tensor/op_checks.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {

// How a [rows, cols] matrix maps onto BLAS: row- or column-major with a leading dimension, or not
// at all (then we copy): tensor/op_checks.h.
using Layout = checks::GemmLayout;
using checks::gemm_layout;

template <typename T, int Order>
using MapMat = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0, Eigen::OuterStride<>>;
template <typename T>
using OutMat = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

template <typename T, int OrderA, int OrderB>
void gemm_mapped(const T* a, Layout la, const T* b, Layout lb, T* c, int64_t n, int64_t k, int64_t m, bool acc) {
  MapMat<T, OrderA> A(a, n, k, Eigen::OuterStride<>(la.ld));
  MapMat<T, OrderB> B(b, k, m, Eigen::OuterStride<>(lb.ld));
  OutMat<T> C(c, n, m);
  if (acc) C.noalias() += A * B;
  else C.noalias() = A * B;
}

#ifdef MINIPIPE_BLAS
// Straight to cblas with beta = 0 (beta = 1 to accumulate). (Eigen's BLAS path zeroes C and then
// calls with beta = 1: an extra pass over C that showed on the MLP's thinnest products; same bits
// either way.) A column-major operand is the transpose of a row-major one with the same leading
// dimension.
void blas_gemm(const float* a, Layout la, const float* b, Layout lb, float* c, int64_t n, int64_t k, int64_t m,
               bool acc) {
  cblas_sgemm(CblasRowMajor, la.col_major ? CblasTrans : CblasNoTrans, lb.col_major ? CblasTrans : CblasNoTrans,
              n, m, k, 1.0f, a, la.ld, b, lb.ld, acc ? 1.0f : 0.0f, c, m);
}
void blas_gemm(const double* a, Layout la, const double* b, Layout lb, double* c, int64_t n, int64_t k, int64_t m,
               bool acc) {
  cblas_dgemm(CblasRowMajor, la.col_major ? CblasTrans : CblasNoTrans, lb.col_major ? CblasTrans : CblasNoTrans,
              n, m, k, 1.0, a, la.ld, b, lb.ld, acc ? 1.0 : 0.0, c, m);
}
#endif

// c[n, m] = a[n, k] @ b[k, m] (acc: c +=) for one pair of matrices with the given layouts.
template <typename T>
void gemm(const T* a, Layout la, const T* b, Layout lb, T* c, int64_t n, int64_t k, int64_t m, bool acc = false) {
  if (n == 0 || m == 0) return;
  if (k == 0) {
    if (!acc) std::fill(c, c + n * m, T(0));
    return;
  }
#ifdef MINIPIPE_BLAS
  blas_gemm(a, la, b, lb, c, n, k, m, acc);
#else
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;
  if (!la.col_major && !lb.col_major) gemm_mapped<T, R, R>(a, la, b, lb, c, n, k, m, acc);
  else if (!la.col_major) gemm_mapped<T, R, C>(a, la, b, lb, c, n, k, m, acc);
  else if (!lb.col_major) gemm_mapped<T, C, R>(a, la, b, lb, c, n, k, m, acc);
  else gemm_mapped<T, C, C>(a, la, b, lb, c, n, k, m, acc);
#endif
}

// An operand as BLAS sees it: its own layout, or a contiguous copy when it has none.
Layout operand(Tensor& t, int64_t rows, int64_t cols) {
  Layout l = gemm_layout(rows, cols, t.stride(-2), t.stride(-1));
  if (!l.ok) {
    t = contiguous(t);
    l = gemm_layout(rows, cols, t.stride(-2), t.stride(-1));
  }
  return l;
}

// Many small products (attention heads): one per thread, each GEMM single-threaded.
// One big product: the BLAS uses every thread itself. Below ~2^18 multiply-adds in all, waking
// the thread team costs more than it saves (and far more on an oversubscribed machine).
template <typename T>
void gemm_batched(const T* pa, Layout la, const std::vector<int64_t>& off_a, const T* pb, Layout lb,
                  const std::vector<int64_t>& off_b, T* pc, int64_t n, int64_t k, int64_t m) {
  const int64_t batches = static_cast<int64_t>(off_a.size());
  const bool par = batches > 1 && batches * n * k * m >= (int64_t{1} << 18) && !omp_in_parallel();
  if (!par) {  // no OpenMP region at all: even an if(false) one costs a futex wake, ~0.5 us
    for (int64_t i = 0; i < batches; ++i) gemm<T>(pa + off_a[i], la, pb + off_b[i], lb, pc + i * n * m, n, k, m);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < batches; ++i) gemm<T>(pa + off_a[i], la, pb + off_b[i], lb, pc + i * n * m, n, k, m);
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  checks::Matmul p = checks::matmul(a_in, b_in);  // shapes checked, vectors promoted, batch broadcast
  MP_CHECK(is_floating(a_in.dtype()), "matmul: expected floating-point operands, got ", dtype_name(a_in.dtype()));
  Tensor& a = p.a;
  Tensor& b = p.b;
  const int64_t n = p.n, k = p.k, m = p.m;
  const Layout la = operand(a, n, k), lb = operand(b, k, m);
#ifdef MINIPIPE_BLAS
  // Checked here, not in the GEMM: an exception must not leave an OpenMP region.
  MP_CHECK(std::max({n, k, m, la.ld, lb.ld}) <= INT32_MAX, "matmul: dimensions of ", shape_str(a_in.sizes()),
           " x ", shape_str(b_in.sizes()), " exceed the 32-bit indices of BLAS");
#endif
  Tensor out = empty(p.out_shape, a.options());
  const auto [off_a, off_b] = checks::batch_offsets(p.batch, a, b);
  MP_DISPATCH_FLOAT(a.dtype(), "matmul", [&] {
    gemm_batched<scalar_t>(a.data_ptr<scalar_t>(), la, off_a, b.data_ptr<scalar_t>(), lb, off_b,
                           out.data_ptr<scalar_t>(), n, k, m);
  });
  if (p.a_vec) out = squeeze(out, -2);
  if (p.b_vec) out = squeeze(out, -1);
  return out;
}

void addmm_(const Tensor& c, const Tensor& a_in, const Tensor& b_in) {
  MP_CHECK(a_in.dim() == 2 && b_in.dim() == 2 && c.dim() == 2 && a_in.size(1) == b_in.size(0) &&
               c.size(0) == a_in.size(0) && c.size(1) == b_in.size(1),
           "addmm_: needs c [n, m] += a [n, k] @ b [k, m], got ", shape_str(c.sizes()), " += ",
           shape_str(a_in.sizes()), " @ ", shape_str(b_in.sizes()));
  MP_CHECK(a_in.dtype() == c.dtype() && b_in.dtype() == c.dtype() && is_floating(c.dtype()),
           "addmm_: needs one floating-point dtype, got ", dtype_name(c.dtype()), " += ", dtype_name(a_in.dtype()),
           " @ ", dtype_name(b_in.dtype()));
  MP_CHECK(c.is_contiguous(), "addmm_: the destination must be contiguous, got strides ", shape_str(c.strides()));
  Tensor a = a_in, b = b_in;
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  const Layout la = operand(a, n, k), lb = operand(b, k, m);
#ifdef MINIPIPE_BLAS
  MP_CHECK(std::max({n, k, m, la.ld, lb.ld}) <= INT32_MAX, "addmm_: dimensions of ", shape_str(a_in.sizes()),
           " @ ", shape_str(b_in.sizes()), " exceed the 32-bit indices of BLAS");
#endif
  MP_DISPATCH_FLOAT(c.dtype(), "addmm_", [&] {
    gemm<scalar_t>(a.data_ptr<scalar_t>(), la, b.data_ptr<scalar_t>(), lb, c.data_ptr<scalar_t>(), n, k, m, true);
  });
}

}  // namespace minipipe::cpu
