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

// ---- the backend's entries, one file per family ----
// copy.cpp
void copy_across(const Tensor& dst, const Tensor& src);
void copy_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& t, double value);
// elementwise.cpp
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor pow_scalar(const Tensor& a, double exponent);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
void add_(const Tensor& a, const Tensor& b, double alpha);
void mul_scalar_(const Tensor& a, double s);
Tensor relu_backward(const Tensor& grad, const Tensor& x);
Tensor gelu_backward(const Tensor& grad, const Tensor& x);
Tensor tanh_backward(const Tensor& grad, const Tensor& y);
Tensor sigmoid_backward(const Tensor& grad, const Tensor& y);
// reduce.cpp
Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim);
std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim);
Tensor softmax(const Tensor& t, int64_t dim);
Tensor log_softmax(const Tensor& t, int64_t dim);
Tensor softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);
std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& targets);
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& targets);
// matmul.cpp
Tensor matmul(const Tensor& a, const Tensor& b);
void addmm_(const Tensor& c, const Tensor& a, const Tensor& b);
// transformer.cpp
std::tuple<Tensor, Tensor, Tensor> layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
std::tuple<Tensor, Tensor, Tensor> layernorm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight,
                                                      const Tensor& mean, const Tensor& rstd);
Tensor embedding(const Tensor& weight, const Tensor& index);
Tensor embedding_backward(const Tensor& grad, const Tensor& index, int64_t num_embeddings);
Tensor causal_softmax(const Tensor& att, double scale);
Tensor causal_softmax_backward(const Tensor& grad, const Tensor& y, double scale);
std::pair<Tensor, Tensor> attention_forward(const Tensor& qkv, int64_t n_head, const Tensor& mask);
Tensor attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head, const Tensor& mask);
Tensor dropout_mask(const Shape& shape, TensorOptions opts, double p, const RandomSource& src);
void adamw_step_(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s);
// index.cpp
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype);

// matmul.cpp: row-major C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for b < batch, strided batches,
// through cublasGemmStridedBatchedEx (TF32 when allow_tf32()). A is [n, k] (stored [k, n] when
// ta), B is [k, m] (stored [m, k] when tb); lda/ldb/ldc are row-major leading dims.
void gemm(int device, bool ta, bool tb, int64_t n, int64_t m, int64_t k, const float* A, int64_t lda, int64_t sa,
          const float* B, int64_t ldb, int64_t sb, float* C, int64_t ldc, int64_t sc, int64_t batch, float alpha,
          float beta);

// allocator.cpp
void* device_alloc(size_t nbytes, int device, size_t& block_bytes);
void device_free(void* block, size_t block_bytes, int device);

}  // namespace minipipe::cuda
