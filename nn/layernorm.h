// nn::LayerNorm over the last dim, as torch.nn.LayerNorm(C): weight (gamma) 1, bias (beta) 0.
// Runs the fused op (autograd layer_norm -> ops::layernorm), which caches mean and rstd.
#pragma once

#include "nn/module.h"

namespace minipipe::nn {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5, DType dtype = DType::Float32);
  // x: [..., C] -> [..., C]
  Tensor forward(const Tensor& x) override { return layer_norm(x, weight, bias, eps); }
  std::string extra_repr() const override;

  int64_t normalized_shape;
  double eps;
  Tensor weight;  // [C]
  Tensor bias;    // [C]
};

}  // namespace minipipe::nn
