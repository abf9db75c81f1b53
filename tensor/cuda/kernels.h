// The CUDA kernel launchers: plain pointers, sizes and a stream — no Tensor — so the .cu files stay
// small for nvcc and the Tensor-level checks live once, in the backend's .cpp files. Each launcher
// enqueues on `stream` and checks the launch (CUDA_LAUNCH_CHECK); it never synchronises. Float32
// kernels, with int64 where indices and masks need it. One .cu file per op family.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace minipipe::cuda {

// ---- strided geometry of an elementwise op (elementwise.cu, copy.cu) ----
// Up to kMaxDims dims (after merging dims contiguous for every operand), N operands (output first),
// strides in elements (0 on broadcast dims). Passed to kernels by value.
constexpr int kMaxDims = 8;
template <int N>
struct Geometry {
  int ndim = 1;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
  // Every operand walks its memory contiguously (ndim == 1, all strides 1): the fast path.
  bool contiguous() const {
    if (ndim != 1) return false;
    for (int k = 0; k < N; ++k)
      if (strides[k][0] != 1) return false;
    return true;
  }
};

enum class ScalarType : int { Float32 = 0, Float64 = 1, Int64 = 2 };

// copy.cu: dst = cast(src) over the geometry; any pair of the three dtypes.
void launch_copy(void* dst, ScalarType dt, const void* src, ScalarType st, const Geometry<2>& g, int64_t n,
                 cudaStream_t stream);
// copy.cu: every element of the strided view = value (converted to the dtype).
void launch_fill(void* dst, ScalarType dt, double value, const Geometry<1>& g, int64_t n, cudaStream_t stream);
// copy.cu: dst[0..n) = words[0..n), n <= kMaxWords; the values travel in the launch itself, so the
// caller's array may go at once and nothing waits for the stream (cudaMemcpyAsync from pageable
// memory may).
constexpr int kMaxWords = 16;
void launch_write_words(int64_t* dst, const int64_t* words, int n, cudaStream_t stream);

// ---- elementwise.cu ----
enum class UnaryOp : int { Neg, Exp, Log, Sqrt, Abs, Tanh, Sigmoid, Relu, Gelu, AddScalar, MulScalar, Pow, Square };
// out = f(a[, scalar]) over float32.
void launch_unary(UnaryOp op, float* out, const float* a, float scalar, const Geometry<2>& g, int64_t n,
                  cudaStream_t stream);
enum class BinaryOp : int {
  Add, Sub, Mul, Div, Maximum, Eq, Ne, Lt, Le, Gt, Ge,
  ReluBackward, GeluBackward, TanhBackward, SigmoidBackward,
  AddScaled,  // a + alpha * b (add_)
};
// out = f(a, b) over float32; alpha only for AddScaled.
void launch_binary(BinaryOp op, float* out, const float* a, const float* b, float alpha, const Geometry<3>& g,
                   int64_t n, cudaStream_t stream);
// The same over int64 for Add, Sub, Mul, Maximum and the comparisons (others: an error).
void launch_binary_i64(BinaryOp op, int64_t* out, const int64_t* a, const int64_t* b, const Geometry<3>& g, int64_t n,
                       cudaStream_t stream);
// out = cond != 0 ? a : b; cond float32 or int64, a and b of one dtype (float32 or int64).
void launch_where(void* out, const void* cond, ScalarType ct, const void* a, const void* b, ScalarType vt,
                  const Geometry<4>& g, int64_t n, cudaStream_t stream);

// ---- reduce.cu ----
// in: [rows, n] contiguous -> out[r] = sum_j in[r, j] (float32 or int64).
void launch_sum_rows(const void* in, void* out, ScalarType t, int64_t rows, int64_t n, cudaStream_t stream);
// in: [rows, n] contiguous -> partial [rows, parts]: the sum of chunk p of row r (for few long rows).
void launch_sum_row_parts(const void* in, void* partial, ScalarType t, int64_t rows, int64_t n, int64_t parts,
                          cudaStream_t stream);
// in: [n, cols] contiguous -> out[c] = sum_i in[i, c] (float32 or int64): the bias-gradient shape.
void launch_sum_cols(const void* in, void* out, ScalarType t, int64_t n, int64_t cols, cudaStream_t stream);
// in: [n, cols] contiguous -> partial [parts, cols]: column sums over chunk p of the rows.
void launch_sum_col_parts(const void* in, void* partial, ScalarType t, int64_t n, int64_t cols, int64_t parts,
                          cudaStream_t stream);
// in: [rows, n] contiguous -> values[r] = max_j, indices[r] = first argmax (float32 or int64 values).
void launch_max_rows(const void* in, void* values, int64_t* indices, ScalarType t, int64_t rows, int64_t n,
                     cudaStream_t stream);

// ---- softmax.cu ----
// Rows of n contiguous floats. log: log_softmax instead of softmax.
void launch_softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log, cudaStream_t stream);
// softmax: dx = y (g - sum(g y)); log_softmax (y = log p): dx = g - exp(y) sum(g).
void launch_softmax_backward_rows(const float* g, const float* y, float* dx, int64_t rows, int64_t n, bool log,
                                  cudaStream_t stream);
// Fused softmax + cross entropy: logits [N, C], targets [N] -> probs [N, C], row_loss [N]
// (logsumexp - logit of the target). A target outside [0, C) sets *bad_target to 1 (checked on the host).
void launch_cross_entropy(const float* logits, const int64_t* targets, float* probs, float* row_loss, int* bad_target,
                          int64_t N, int64_t C, cudaStream_t stream);
// dx = probs * g / N, minus g / N at each row's target; g read from device memory (0-dim tensor).
void launch_cross_entropy_backward(const float* grad, const float* probs, const int64_t* targets, float* dx, int64_t N,
                                   int64_t C, cudaStream_t stream);
// Causal softmax of scale * att over rows of tk; row r is query (r mod tq), which sees keys j <= (r mod tq) + tk - tq.
void launch_causal_softmax(const float* att, float* y, int64_t rows, int64_t tq, int64_t tk, float scale,
                           cudaStream_t stream);
// d att = scale * y * (g - sum_j g y) on the visible keys, 0 elsewhere. g may alias d.
void launch_causal_softmax_backward(const float* g, const float* y, float* d, int64_t rows, int64_t tq, int64_t tk,
                                    float scale, cudaStream_t stream);

// ---- layernorm.cu ----
// x: [rows, C] -> out [rows, C], mean [rows], rstd [rows].
void launch_layernorm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                      int64_t rows, int64_t C, float eps, cudaStream_t stream);
// -> dx [rows, C], dw [C], db [C] (dw and db written, not accumulated; deterministic order). With
// parts > 1 the rows are cut into `parts` chunks: `partial` ([2, parts, C]) takes each chunk's
// sums, then a fixed-order pass adds them (layernorm_parts says how many parts pay).
int64_t layernorm_parts(int64_t rows);
void launch_layernorm_backward(const float* dout, const float* x, const float* w, const float* mean,
                               const float* rstd, float* dx, float* dw, float* db, int64_t rows, int64_t C,
                               float* partial, int64_t parts, cudaStream_t stream);

// ---- embedding.cu ----
// Indices outside [0, V) set *bad_index to 1 (checked on the host) and read/write nothing.
// out [n, C] = weight[index[i], :]
void launch_embedding(const float* weight, const int64_t* index, float* out, int* bad_index, int64_t n, int64_t V,
                      int64_t C, cudaStream_t stream);
// dweight [V, C] (zeroed by the caller) += grad[i, :] at row index[i] (atomicAdd scatter).
void launch_embedding_backward(const float* grad, const int64_t* index, float* dweight, int* bad_index, int64_t n,
                               int64_t V, int64_t C, cudaStream_t stream);
// out [outer, K, inner] = in [outer, n, inner] at index[k] along the middle dim (float32 or int64).
void launch_index_select(const void* in, const int64_t* index, void* out, ScalarType t, int* bad_index,
                         int64_t outer, int64_t n, int64_t K, int64_t inner, cudaStream_t stream);
// out [outer, n, inner] (zeroed by the caller) += src [outer, K, inner] at index[k] (float32, atomicAdd).
void launch_index_add(const float* src, const int64_t* index, float* out, int* bad_index, int64_t outer, int64_t n,
                      int64_t K, int64_t inner, cudaStream_t stream);
// out [n, classes] (zeroed by the caller): 1 at (i, index[i]) (float32 or int64 out).
void launch_one_hot(const int64_t* index, void* out, ScalarType t, int* bad_index, int64_t n, int64_t classes,
                    cudaStream_t stream);

// ---- random.cu ----
// The counter-based dropout mask (tensor/philox.h), the same bits as the CPU's: element j of row b
// is word (j mod 4) of philox((j / 4, sample_offset + b, step lo, step hi), key), dropped if < p 2^32.
void launch_dropout_mask(float* mask, int64_t rows, int64_t per_row, uint64_t key, uint64_t step,
                         int64_t sample_offset, double p, float keep, cudaStream_t stream);

// ---- optim.cu ----
// The fused AdamW step of ops::adamw_step_ on n float32 elements (coefficients precomputed in double).
void launch_adamw(float* p, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float decay,
                  float step_size, float inv_sqrt_bc2, float eps, cudaStream_t stream);
// The fused SGD step of ops::sgd_step_ on n float32 elements; buf null without momentum.
void launch_sgd(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float damp, float decay,
                bool nesterov, bool first, cudaStream_t stream);

}  // namespace minipipe::cuda
