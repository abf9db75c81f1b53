// The differentiable ops: what user code calls (minipipe::matmul, a + b, ...). Each wraps a raw
// op from tensor/ops.h and records a backward next to it (autograd/ops_*.cpp, one file per
// family). Under NoGradGuard, or when no input requires grad, they cost just the raw op.
#pragma once

#include <vector>

#include "autograd/node.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe {

using autograd::NoGradGuard;

// ---- elementwise (ops_elementwise.cpp); binary ops broadcast ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // no grad to cond
Tensor masked_fill(const Tensor& t, const Tensor& mask, double value);
// Comparisons are not differentiable: 0/1 masks (see ops::eq).
using ops::eq;
using ops::ge;
using ops::gt;
using ops::le;
using ops::lt;
using ops::ne;

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(const Tensor& a, double s);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(const Tensor& a, double s);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(const Tensor& a, double s);

// ---- reductions (ops_reduce.cpp) ----
Tensor sum(const Tensor& t);
Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim = false);
Tensor mean(const Tensor& t);
Tensor mean(const Tensor& t, std::vector<int64_t> dims, bool keepdim = false);
Tensor amax(const Tensor& t, int64_t dim, bool keepdim = false);  // max values; grad to the argmax
using ops::argmax;

// ---- views (ops_view.cpp): share storage; gradients flow back through them ----
Tensor view(const Tensor& t, Shape shape);
Tensor reshape(const Tensor& t, Shape shape);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& t, int64_t dim, int64_t index);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& t);
Tensor to(const Tensor& t, DType dtype);

// ---- matrix products (ops_matmul.cpp) ----
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x W^T + b. x: [..., in], weight: [out, in], bias: [out] (or undefined) -> [..., out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

// ---- neural-network functions (ops_nn.cpp) ----
Tensor softmax(const Tensor& t, int64_t dim);
Tensor log_softmax(const Tensor& t, int64_t dim);
// Fused log-softmax + NLL, mean over the batch. logits [N, C], int64 targets [N] -> scalar.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
// Inverted dropout: zero with probability p and scale the rest by 1/(1-p) when training. The mask
// comes from `src`: a Generator (null: the default one) or a counter key (tensor/generator.h).
Tensor dropout(const Tensor& t, double p, bool training, const RandomSource& src = {});

// ---- joining and indexing (ops_index.cpp) ----
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
using ops::one_hot;

// ---- transformer ops (ops_transformer.cpp) ----
// LayerNorm over the last dim (fused; caches mean and rstd): x: [..., C], weight, bias: [C] -> [..., C]
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// Row lookup: weight: [V, C], int64 index: [...] -> [..., C]; the gradient scatter-adds into weight.
Tensor embedding(const Tensor& weight, const Tensor& index);
// softmax(scale * att) under the causal mask, att: [..., Tq, Tk] (see ops::causal_softmax).
Tensor causal_softmax(const Tensor& att, double scale);
// Causal scaled dot-product attention on heads. q, k, v: [B, H, T, hd] -> [B, H, T, hd]:
//   y = dropout(causal_softmax(q k^T, 1/sqrt(hd)), p) v
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double dropout_p = 0.0,
                        bool training = false, const RandomSource& src = {});
// The same without dropout, composed from matmul, masked_fill(-inf above the diagonal) and
// softmax: the reference the fused path is tested against.
Tensor causal_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v);
// The attention of a GPT block as one op (ops::attention_forward / attention_backward): qkv from
// the fused projection, [B, T, 3C] -> [B, T, C] (heads merged), with dropout p on the weights.
// Same result as splitting qkv into heads and calling causal_attention (tested), one node.
Tensor causal_self_attention(const Tensor& qkv, int64_t n_head, double dropout_p = 0.0, bool training = false,
                             const RandomSource& src = {});

}  // namespace minipipe
