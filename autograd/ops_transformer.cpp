// Differentiable transformer ops: LayerNorm (fused forward caching mean/rstd, fused backward),
// embedding lookup (backward: deterministic scatter-add), the causal softmax, causal attention
// composed from it and two batched matmuls, and the same attention fused into one node working
// on the QKV projection directly. Forward and backward side by side.
#include <cmath>
#include <limits>

#include "autograd/functions.h"

namespace minipipe {

using autograd::InputGrads;
using autograd::record;

// x: [..., C], weight, bias: [C] -> [..., C]
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  MP_CHECK(x.defined() && weight.defined() && bias.defined(), "layer_norm: got an undefined input, weight or bias");
  auto [out, mean, rstd] = ops::layernorm(x, weight, bias, eps);
  // Saved: x, weight and the cached mean, rstd [rows] (two floats per row, not a copy of xhat).
  return record("LayerNormBackward", out, {x, weight, bias},
                [x = x.detach(), w = weight.detach(), mean, rstd](const Tensor& g, InputGrads& gi) {
                  auto [dx, dw, db] = ops::layernorm_backward(g, x, w, mean, rstd);
                  if (gi.needs(0)) gi[0] = dx;  // [..., C]
                  if (gi.needs(1)) gi[1] = dw;  // [C]
                  if (gi.needs(2)) gi[2] = db;  // [C]
                });
}

// weight: [V, C], index: [...] -> [..., C]
Tensor embedding(const Tensor& weight, const Tensor& index) {
  MP_CHECK(weight.defined() && index.defined(), "embedding: got an undefined weight or index");
  Tensor out = ops::embedding(weight, index);
  return record("EmbeddingBackward", out, {weight},
                [idx = index.detach(), V = weight.size(0)](const Tensor& g, InputGrads& gi) {
                  gi[0] = ops::embedding_backward(g, idx, V);  // [V, C]
                });
}

// att: [..., Tq, Tk] -> y [..., Tq, Tk]
Tensor causal_softmax(const Tensor& att, double scale) {
  Tensor y = ops::causal_softmax(att, scale);
  return record("CausalSoftmaxBackward", y, {att}, [y = y.detach(), scale](const Tensor& g, InputGrads& gi) {
    gi[0] = ops::causal_softmax_backward(g, y, scale);
  });
}

namespace {
void check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  MP_CHECK(q.defined() && k.defined() && v.defined(), op, ": got an undefined q, k or v");
  MP_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && q.sizes() == v.sizes(), op,
           ": q, k, v must all be [B, H, T, hd], got ", shape_str(q.sizes()), ", ", shape_str(k.sizes()), ", ",
           shape_str(v.sizes()));
  MP_CHECK(q.size(3) > 0, op, ": head size must be positive, got ", shape_str(q.sizes()));
}
}  // namespace

// q, k, v: [B, H, T, hd];  att = q k^T: [B, H, T, T];  y = att v: [B, H, T, hd]
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double dropout_p, bool training,
                        const RandomSource& src) {
  check_qkv("causal_attention", q, k, v);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor att = matmul(q, transpose(k, -2, -1));  // [B, H, T, T]
  att = causal_softmax(att, scale);              // row t: weights over keys 0..t, zeros after
  att = dropout(att, dropout_p, training, src);
  return matmul(att, v);  // [B, H, T, hd]
}

Tensor causal_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v) {
  check_qkv("causal_attention_reference", q, k, v);
  const int64_t T = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  // mask[i, j] = 1 where key j lies in query i's future (j > i).
  Tensor pos = arange(T, q.options());
  Tensor mask = ops::gt(ops::unsqueeze(pos, 0), ops::unsqueeze(pos, 1));  // [T, T]
  Tensor att = mul(matmul(q, transpose(k, -2, -1)), scale);
  att = masked_fill(att, mask, -std::numeric_limits<double>::infinity());
  return matmul(softmax(att, -1), v);
}

// qkv: [B, T, 3C] -> [B, T, C]
Tensor causal_self_attention(const Tensor& qkv, int64_t n_head, double dropout_p, bool training,
                             const RandomSource& src) {
  MP_CHECK(qkv.defined(), "causal_self_attention: got an undefined qkv");
  MP_CHECK(dropout_p >= 0.0 && dropout_p < 1.0, "dropout: probability must be in [0, 1), got ", dropout_p);
  Tensor mask;  // drawn exactly as dropout(att) would draw it: same source, same shape [B, H, T, T]
  if (training && dropout_p > 0) {
    MP_CHECK(qkv.dim() == 3, "causal_self_attention: expected qkv [B, T, 3C], got ", shape_str(qkv.sizes()));
    mask = ops::dropout_mask({qkv.size(0), n_head, qkv.size(1), qkv.size(1)}, qkv.options(), dropout_p, src);
  }
  auto [out, att] = ops::attention_forward(qkv, n_head, mask);
  // Saved: qkv [B, T, 3C], att [B, H, T, T] (softmax weights) and the mask.
  return record("CausalSelfAttentionBackward", out, {qkv},
                [x = qkv.detach(), att, mask, n_head](const Tensor& g, InputGrads& gi) {
                  gi[0] = ops::attention_backward(g, x, att, n_head, mask);  // [B, T, 3C]
                });
}

}  // namespace minipipe
