// The raw tensor ops: no gradients, no graph — just kernels on storage. Each op that touches
// memory has one dispatch point (tensor/dispatch.cpp): every tensor must be on one device, and the
// op runs that device's kernel (tensor/backend.h; tensor/cpu/ is the reference for every one,
// tensor/cuda/ the GPU one). autograd/ wraps the differentiable ones.
// Binary elementwise ops broadcast like NumPy. Every op checks its inputs and names itself and
// the shapes in the error.
#pragma once

#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "tensor/generator.h"
#include "tensor/tensor.h"

namespace minipipe::ops {

// ---- views: no copy, share storage (tensor/view.cpp) ----
Tensor view(const Tensor& t, Shape shape);     // one dim may be -1; needs compatible strides
Tensor reshape(const Tensor& t, Shape shape);  // a view when possible, else a copy
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
// Python-style slice bounds on a dim of size n: negatives count from the end, then clamp.
std::pair<int64_t, int64_t> normalize_slice(int64_t n, int64_t start, int64_t end);
Tensor select(const Tensor& t, int64_t dim, int64_t index);  // drops `dim`
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor squeeze(const Tensor& t);  // all size-1 dims
Tensor expand(const Tensor& t, const Shape& shape);  // size-1 dims stretch with stride 0
Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);

// ---- copies (tensor/cpu/copy.cpp) ----
Tensor contiguous(const Tensor& t);  // returns t itself when already contiguous
Tensor clone(const Tensor& t);
// src broadcasts to dst; dtypes may differ. dst and src may be on different devices (host <->
// device, device <-> device): then shapes and dtypes must match, and the copy is complete when
// copy_ returns.
void copy_(const Tensor& dst, const Tensor& src);
Tensor to(const Tensor& t, DType dtype);           // t itself when already that dtype
Tensor to(const Tensor& t, Device device);         // t itself when already there; else a contiguous copy
void fill_(const Tensor& t, double value);

// ---- elementwise (tensor/cpu/elementwise.cpp) ----
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
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
Tensor gelu(const Tensor& a);  // tanh approximation, as GPT-2
// Comparisons give a 0/1 mask of a's dtype (for int64 inputs: int64).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond != 0 (in cond's dtype) ? a : b
Tensor masked_fill(const Tensor& t, const Tensor& mask, double value);
// In-place helpers for optimizers: a += alpha * b, a *= s.
void add_(const Tensor& a, const Tensor& b, double alpha = 1.0);
void mul_scalar_(const Tensor& a, double s);
// Derivatives used by the autograd nodes: grad * f'(x) (or of y = f(x) where cheaper).
Tensor relu_backward(const Tensor& grad, const Tensor& x);
Tensor gelu_backward(const Tensor& grad, const Tensor& x);
Tensor tanh_backward(const Tensor& grad, const Tensor& y);
Tensor sigmoid_backward(const Tensor& grad, const Tensor& y);

// ---- reductions (tensor/cpu/reduce.cpp) ----
Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim = false);
Tensor sum(const Tensor& t);  // all elements -> scalar (0-dim)
Tensor mean(const Tensor& t, std::vector<int64_t> dims, bool keepdim = false);
Tensor mean(const Tensor& t);
std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim = false);  // values, int64 indices
Tensor max(const Tensor& t);  // all elements
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim = false);
// Sum `t` down to `shape` (the reverse of broadcasting `shape` up to t's shape).
Tensor sum_to(const Tensor& t, const Shape& shape);

// ---- softmax family (tensor/cpu/softmax.cpp) ----
Tensor softmax(const Tensor& t, int64_t dim);
Tensor log_softmax(const Tensor& t, int64_t dim);
Tensor softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);
// Fused, numerically stable cross entropy: logits [N, C], int64 targets [N] -> mean loss
// (0-dim) and the softmax probabilities [N, C] that the backward needs.
std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& targets);
// d loss / d logits = (probs - one_hot(targets)) * grad / N
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& targets);

// ---- matrix products (tensor/cpu/matmul.cpp) ----
// a: [..., n, k], b: [..., k, m] -> [..., n, m], batch dims broadcast; 1-D operands as in NumPy.
Tensor matmul(const Tensor& a, const Tensor& b);
// c += a @ b for matrices a [n, k], b [k, m] and a contiguous c [n, m]: one GEMM with beta = 1, no
// temporary. Autograd sums a weight's gradient over micro-batches with it (LinearBackward).
void addmm_(const Tensor& c, const Tensor& a, const Tensor& b);

// ---- joining and indexing (tensor/cpu/index.cpp) ----
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);  // int64 index [K]
// out = zeros(shape); out.index_add_(dim, index, src): the backward of index_select.
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype = DType::Float32);

// ---- random (tensor/cpu/random.cpp) ----
// Inverted dropout mask: 0 with probability p, else 1/(1-p); shape and dtype of `like`. From a
// Generator: drawn in row-major order. From a CounterKey: element j of row b (dim 0 = samples) is a
// function of (key, step, sample_offset + b, j) alone.
Tensor dropout_mask(const Shape& shape, TensorOptions opts, double p, const RandomSource& src);
inline Tensor dropout_mask(const Tensor& like, double p, const RandomSource& src) {
  return dropout_mask(like.sizes(), like.options(), p, src);
}
inline Tensor dropout_mask(const Tensor& like, double p, Generator& gen) { return dropout_mask(like, p, &gen); }

// ---- transformer kernels (tensor/cpu/layernorm.cpp, embedding.cpp, attention.cpp) ----
// LayerNorm over the last dim, fused: x: [..., C], weight, bias: [C] ->
// {out [..., C], mean [rows], rstd [rows]} with rows = numel / C; out = (x - mean) * rstd * w + b,
// rstd = 1 / sqrt(var + eps) (biased variance). mean and rstd are cached for the backward.
std::tuple<Tensor, Tensor, Tensor> layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                             double eps);
// -> {dx [..., C], dweight [C], dbias [C]}. dweight/dbias are summed over rows in a fixed order.
std::tuple<Tensor, Tensor, Tensor> layernorm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight,
                                                      const Tensor& mean, const Tensor& rstd);
// Row lookup: weight: [V, C], int64 index: [...] -> [..., C].
Tensor embedding(const Tensor& weight, const Tensor& index);
// Scatter-add of grad: [..., C] into a zero [V, C] table, rows added in index order
// (deterministic whatever the thread count; threads split the C columns).
Tensor embedding_backward(const Tensor& grad, const Tensor& index, int64_t num_embeddings);
// Causal softmax over the last dim of scale * att. att: [..., Tq, Tk] with Tq <= Tk; query i sits at
// position i + Tk - Tq and sees keys j <= that position; the rest of the row is exactly 0.
Tensor causal_softmax(const Tensor& att, double scale);
// y = causal_softmax(att, scale): d att = scale * y * (g - sum_j(g * y)); masked entries get 0.
Tensor causal_softmax_backward(const Tensor& grad, const Tensor& y, double scale);
// Causal multi-head self-attention from a fused QKV projection (llm.c's attention_forward).
// qkv: [B, T, 3C] = [q | k | v], each split into H heads of hd = C / H channels ->
// {out [B, T, C] (heads side by side), att [B, H, T, T] (softmax weights, cached for backward)}:
//   att = causal_softmax(q k^T, 1/sqrt(hd)),  out = (att * mask) v.  mask: the dropout mask of
//   att's shape (0 or 1/(1-p)), or undefined for none.
std::pair<Tensor, Tensor> attention_forward(const Tensor& qkv, int64_t n_head, const Tensor& mask = {});
// -> dqkv [B, T, 3C], from dout [B, T, C] and what the forward cached.
Tensor attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head,
                          const Tensor& mask = {});

// ---- optimizer (tensor/cpu/optim.cpp, tensor/cuda/optim.cu) ----
// One AdamW step (decoupled weight decay, Loshchilov & Hutter) for a parameter p, in place, with
// t = step (from 1), bc1 = 1 - beta1^t, bc2 = 1 - beta2^t:
//   p *= 1 - lr * weight_decay;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
//   p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps).
// p, grad, m, v: one shape, one floating dtype, contiguous, one device.
struct AdamWStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;
};
void adamw_step_(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s);
// One SGD step (PyTorch's) for a parameter p, in place:
//   d = g + weight_decay p;  with momentum mu > 0: buf = first ? d : mu buf + (1 - dampening) d,
//   d = nesterov ? d + mu buf : buf;  p -= lr d.
// buf: the momentum buffer, defined exactly when momentum != 0 (first: it holds nothing yet).
// p, grad, buf: one shape, one floating dtype, contiguous, one device.
struct SGDStep {
  double lr = 0.01, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false, first = false;
};
void sgd_step_(const Tensor& p, const Tensor& grad, const Tensor& buf, const SGDStep& s);

}  // namespace minipipe::ops
