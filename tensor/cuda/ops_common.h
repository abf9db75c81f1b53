// What the CUDA backend's op files share: the stream an op runs on, float32 checks, the strided
// geometry handed to elementwise kernels (the CPU's dim merging, tensor/cpu/loops.h), and the
// device-side flag through which a kernel reports a bad index. Internal to tensor/cuda/.
#pragma once

#include "tensor/backend.h"
#include "tensor/cpu/loops.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::cuda {

// The op's stream: the compute stream of the tensor's device, made current.
inline cudaStream_t stream_of(const Tensor& t) { return compute_stream(t.device().index); }

inline ScalarType scalar_type(DType d) {
  switch (d) {
    case DType::Float32: return ScalarType::Float32;
    case DType::Float64: return ScalarType::Float64;
    case DType::Int64: return ScalarType::Int64;
  }
  return ScalarType::Float32;
}

// The CUDA backend computes in float32 (float64 exists for the CPU's gradient checks).
inline void check_f32(const char* op, const Tensor& t) {
  MP_CHECK(t.dtype() == DType::Float32, op, ": the CUDA backend computes in float32, got ", dtype_name(t.dtype()),
           " ", shape_str(t.sizes()), " on ", t.device().str());
}

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

template <int N>
Geometry<N> geometry(const Shape& sizes, const std::array<Shape, N>& strides, const char* op) {
  const cpu::LoopGeometry<N> lg = cpu::coalesce<N>(sizes, strides);
  const int nd = static_cast<int>(lg.sizes.size());
  MP_CHECK(nd <= kMaxDims, op, ": shape ", shape_str(sizes), " has more than ", kMaxDims,
           " dims that cannot be merged; the CUDA kernels take at most that many");
  Geometry<N> g;
  g.ndim = nd;
  for (int d = 0; d < nd; ++d) {
    g.sizes[d] = lg.sizes[d];
    for (int k = 0; k < N; ++k) g.strides[k][d] = lg.strides[k][d];
  }
  return g;
}

// A one-element int64 flag on the device, zeroed; kernels set it to report a bad index. check()
// reads it back (synchronising the stream) and throws `message` if it was set.
class DeviceFlag {
 public:
  explicit DeviceFlag(Device d) : t_(zeros({1}, {DType::Int64, d})) {}
  int* get() const { return static_cast<int*>(t_.raw_data()); }
  template <typename... Args>
  void check(const Args&... message) const {
    MP_CHECK(t_.item() == 0, message...);
  }

 private:
  Tensor t_;
};

// ---- the backend's entries: one kernel per entry of tensor/backend_ops.h, in the family's file
// (copy.cpp, elementwise.cpp, reduce.cpp, matmul.cpp, transformer.cpp, index.cpp) ----
MP_BACKEND_OPS(MP_DECLARE_BACKEND_KERNEL)
// copy.cpp: host <-> device and device <-> device (Backend::copy_across)
void copy_across(const Tensor& dst, const Tensor& src);

// matmul.cpp: row-major C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for b < batch, strided batches,
// through cublasGemmStridedBatchedEx (TF32 when allow_tf32()). A is [n, k] (stored [k, n] when
// ta), B is [k, m] (stored [m, k] when tb); lda/ldb/ldc are row-major leading dims.
void gemm(int device, bool ta, bool tb, int64_t n, int64_t m, int64_t k, const float* A, int64_t lda, int64_t sa,
          const float* B, int64_t ldb, int64_t sb, float* C, int64_t ldc, int64_t sc, int64_t batch, float alpha,
          float beta);

// allocator.cpp
void* device_alloc(size_t nbytes, int device, size_t& block_bytes);
void device_free(void* block, size_t block_bytes, int device) noexcept;

}  // namespace minipipe::cuda
