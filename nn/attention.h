// nn::CausalSelfAttention: multi-head self-attention with a causal mask, as in GPT-2 (llm.c's
// attention_forward, nanoGPT's CausalSelfAttention): one fused QKV projection, H heads of size
// C / H, softmax(q k^T / sqrt(hd)) over past positions only, an output projection, and dropout
// on the attention weights and on the output (the residual branch).
#pragma once

#include "nn/linear.h"

namespace minipipe::nn {

class CausalSelfAttention : public Module {
 public:
  // Dropout masks come from the module's random context (sites "att" and "resid"). Weights use
  // Linear's init (the default generator); init=false leaves them zero for the caller (make_gpt)
  // to draw from its own generator.
  CausalSelfAttention(int64_t d_model, int64_t n_heads, double dropout = 0.0, DType dtype = DType::Float32,
                      bool init = true);
  // x: [B, T, C] -> [B, T, C]
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t d_model, n_heads;
  double dropout_p;
  // true: the one-node causal_self_attention on qkv; false: split into heads and compose
  // causal_attention from differentiable views (the same numbers; kept for teaching and tests).
  bool fused = true;
  std::shared_ptr<Linear> qkv;   // C -> 3C: [q | k | v]
  std::shared_ptr<Linear> proj;  // C -> C, a residual projection
};

}  // namespace minipipe::nn
