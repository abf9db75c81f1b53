// nn::Linear: y = x W^T + b, W: [out, in]. PyTorch's default init: W and b ~ U(-k, k) with
// k = 1/sqrt(in) (kaiming_uniform with a = sqrt(5) works out to exactly that bound).
#pragma once

#include "nn/module.h"

namespace minipipe::nn {

struct LinearOptions {
  LinearOptions(int64_t in, int64_t out) : in_features(in), out_features(out) {}
  LinearOptions& bias(bool b) { with_bias = b; return *this; }
  LinearOptions& dtype(DType d) { dtype_ = d; return *this; }
  LinearOptions& generator(Generator* g) { gen = g; return *this; }
  // false: weight and bias start at zero and nothing is drawn (the caller initialises them).
  LinearOptions& init(bool i) { init_ = i; return *this; }
  int64_t in_features, out_features;
  bool with_bias = true;
  DType dtype_ = DType::Float32;
  Generator* gen = nullptr;  // null: the default generator
  bool init_ = true;
};

class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& opts);
  Linear(int64_t in, int64_t out) : Linear(LinearOptions(in, out)) {}
  Tensor forward(const Tensor& x) override { return linear(x, weight, bias); }
  std::string extra_repr() const override;

  LinearOptions options;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined without bias
};

}  // namespace minipipe::nn
