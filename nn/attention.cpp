// nn::CausalSelfAttention forward: split the fused QKV into heads, attend, merge the heads.
#include "nn/attention.h"

namespace minipipe::nn {

CausalSelfAttention::CausalSelfAttention(int64_t c, int64_t h, double dropout, DType dtype, bool init)
    : Module("CausalSelfAttention"), d_model(c), n_heads(h), dropout_p(dropout) {
  MP_CHECK(c > 0 && h > 0, "CausalSelfAttention: d_model and n_heads must be positive, got d_model=", c,
           " n_heads=", h);
  MP_CHECK(c % h == 0, "CausalSelfAttention: n_heads=", h, " does not divide d_model=", c,
           " (each head gets d_model / n_heads channels)");
  MP_CHECK(dropout >= 0 && dropout < 1, "CausalSelfAttention: dropout must be in [0, 1), got ", dropout);
  qkv = register_module("qkv", std::make_shared<Linear>(LinearOptions(c, 3 * c).dtype(dtype).init(init)));
  proj = register_module("proj", std::make_shared<Linear>(LinearOptions(c, c).dtype(dtype).init(init)));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  MP_CHECK(x.dim() == 3 && x.size(2) == d_model, "CausalSelfAttention: expected input [B, T, ", d_model, "], got ",
           shape_str(x.sizes()));
  const int64_t B = x.size(0), T = x.size(1), C = d_model, H = n_heads, hd = C / H;
  Tensor qkv_out = qkv->forward(x);  // [B, T, 3C]
  Tensor y;                          // [B, T, C]
  if (fused) {
    y = causal_self_attention(qkv_out, H, dropout_p, is_training(), random_source("att"));
  } else {
    // Each of q, k, v: a [B, T, C] slice viewed as [B, T, H, hd], heads moved forward: [B, H, T, hd].
    // Views only: the batched matmuls read them through their strides.
    auto head = [&](int64_t i) { return transpose(view(narrow(qkv_out, 2, i * C, C), {B, T, H, hd}), 1, 2); };
    y = causal_attention(head(0), head(1), head(2), dropout_p, is_training(), random_source("att"));  // [B, H, T, hd]
    y = reshape(transpose(y, 1, 2), {B, T, C});  // heads side by side again
  }
  return dropout(proj->forward(y), dropout_p, is_training(), random_source("resid"));
}

std::string CausalSelfAttention::extra_repr() const {
  return "d_model=" + std::to_string(d_model) + ", n_heads=" + std::to_string(n_heads) +
         ", dropout=" + std::to_string(dropout_p);
}

}  // namespace minipipe::nn
