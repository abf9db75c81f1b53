// The CUDA backend's matrix products through cuBLAS: one cublasGemmStridedBatchedEx per matmul
// when the batch offsets are evenly spaced (the common case: contiguous batches, or a weight
// broadcast with stride 0), one GEMM per batch otherwise. Operands are used in place when each
// matrix is row- or column-major (a transposed view costs nothing), copied contiguous otherwise —
// the same rule as the CPU (tensor/cpu/matmul.cpp). Float32 with float32 accumulation; TF32 tensor
// cores when cuda::set_allow_tf32(true). The handle is the device's, bound to its compute stream.
#include <algorithm>
#include <array>
#include <climits>
#include <mutex>

#include "tensor/cuda/ops_common.h"
#include "tensor/op_checks.h"
#include "tensor/cuda/runtime.h"

namespace minipipe::cuda {

namespace {

// How a [rows, cols] matrix is used: row-major with leading dim ld, or stored transposed, i.e.
// column-major (col_major, a transposed GEMM operand); ok = false: copy it (tensor/op_checks.h).
using Layout = checks::GemmLayout;
using checks::gemm_layout;

// The last two dims of t as a GEMM operand; t becomes contiguous when they fit no BLAS layout.
Layout operand(Tensor& t, int64_t rows, int64_t cols) {
  Layout l = gemm_layout(rows, cols, t.stride(-2), t.stride(-1));
  if (l.ok) return l;
  t = ops::contiguous(t);
  return gemm_layout(rows, cols, t.stride(-2), t.stride(-1));
}

void check_int32(const char* op, const Tensor& a, const Tensor& b, std::initializer_list<int64_t> dims) {
  for (int64_t d : dims)
    MP_CHECK(d <= INT_MAX, op, ": dimensions of ", shape_str(a.sizes()), " x ", shape_str(b.sizes()),
             " exceed the 32-bit indices of cuBLAS");
}

}  // namespace

void gemm(int device, bool ta, bool tb, int64_t n, int64_t m, int64_t k, const float* A, int64_t lda, int64_t sa,
          const float* B, int64_t ldb, int64_t sb, float* C, int64_t ldc, int64_t sc, int64_t batch, float alpha,
          float beta) {
  if (n == 0 || m == 0 || batch == 0) return;
  cublasHandle_t handle = cublas_handle(device);
  set_device(device);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const cublasComputeType_t compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // One handle per device, shared by every rank thread on it (several pipeline stages may share a
  // GPU): cuBLAS does not promise that one handle is safe to call from two threads at once.
  static std::array<std::mutex, 64> handle_mutex;
  std::lock_guard<std::mutex> lock(handle_mutex[static_cast<size_t>(device) % handle_mutex.size()]);
  CUBLAS_CHECK(cublas().gemm_strided_batched_ex(
      handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(m),
      static_cast<int>(n), static_cast<int>(k), &alpha, B, CUDA_R_32F, static_cast<int>(ldb), sb, A, CUDA_R_32F,
      static_cast<int>(lda), sa, &beta, C, CUDA_R_32F, static_cast<int>(ldc), sc, static_cast<int>(batch), compute,
      CUBLAS_GEMM_DEFAULT));
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  checks::Matmul p = checks::matmul(a_in, b_in);  // shapes checked, vectors promoted, batch broadcast
  check_f32("matmul", a_in);
  Tensor& a = p.a;
  Tensor& b = p.b;
  const int64_t n = p.n, k = p.k, m = p.m;
  const Layout la = operand(a, n, k), lb = operand(b, k, m);
  const int64_t batches = shape_numel(p.batch);
  check_int32("matmul", a_in, b_in, {n, k, m, la.ld, lb.ld, batches});
  Tensor out = empty(p.out_shape, a.options());
  if (k == 0) {  // an empty sum: zeros, which cuBLAS would not write
    ops::fill_(out, 0.0);
  } else {
    const auto [off_a, off_b] = checks::batch_offsets(p.batch, a, b);
    // Evenly spaced offsets (stride 0 for a broadcast operand): one strided-batched call.
    bool even = true;
    const int64_t sa = batches > 1 ? off_a[1] - off_a[0] : 0, sb = batches > 1 ? off_b[1] - off_b[0] : 0;
    for (int64_t i = 1; i < batches && even; ++i)
      even = off_a[i] - off_a[i - 1] == sa && off_b[i] - off_b[i - 1] == sb;
    const int dev = out.device().index;
    const float *pa = ptr<float>(a), *pb = ptr<float>(b);
    float* pc = ptr<float>(out);
    if (even) {
      gemm(dev, la.col_major, lb.col_major, n, m, k, pa, la.ld, sa, pb, lb.ld, sb, pc, m, n * m, batches, 1.f, 0.f);
    } else {
      for (int64_t i = 0; i < batches; ++i)
        gemm(dev, la.col_major, lb.col_major, n, m, k, pa + off_a[i], la.ld, 0, pb + off_b[i], lb.ld, 0, pc + i * n * m, m, 0, 1,
             1.f, 0.f);
    }
  }
  if (p.a_vec) out = ops::squeeze(out, -2);
  if (p.b_vec) out = ops::squeeze(out, -1);
  return out;
}

void addmm_(const Tensor& c, const Tensor& a_in, const Tensor& b_in) {
  MP_CHECK(a_in.dim() == 2 && b_in.dim() == 2 && c.dim() == 2 && a_in.size(1) == b_in.size(0) &&
               c.size(0) == a_in.size(0) && c.size(1) == b_in.size(1),
           "addmm_: needs c [n, m] += a [n, k] @ b [k, m], got ", shape_str(c.sizes()), " += ",
           shape_str(a_in.sizes()), " @ ", shape_str(b_in.sizes()));
  MP_CHECK(a_in.dtype() == c.dtype() && b_in.dtype() == c.dtype(), "addmm_: needs one dtype, got ",
           dtype_name(c.dtype()), " += ", dtype_name(a_in.dtype()), " @ ", dtype_name(b_in.dtype()));
  check_f32("addmm_", c);
  MP_CHECK(c.is_contiguous(), "addmm_: the destination must be contiguous, got strides ", shape_str(c.strides()));
  Tensor a = a_in, b = b_in;
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  if (k == 0) return;
  const Layout la = operand(a, n, k), lb = operand(b, k, m);
  check_int32("addmm_", a_in, b_in, {n, k, m, la.ld, lb.ld});
  gemm(c.device().index, la.col_major, lb.col_major, n, m, k, ptr<float>(a), la.ld, 0, ptr<float>(b), lb.ld, 0, ptr<float>(c),
       m, 0, 1, 1.f, 1.f);
}

}  // namespace minipipe::cuda
