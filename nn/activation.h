// Parameter-free layers: ReLU, GELU (tanh approximation), Dropout (inverted, off in eval()),
// Flatten. Modules so they can stand in an nn::Sequential between Linear layers.
#pragma once

#include "nn/module.h"

namespace minipipe::nn {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class GELU : public Module {
 public:
  GELU() : Module("GELU") {}
  Tensor forward(const Tensor& x) override { return gelu(x); }
};

// Masks come from the module's random context (Module::set_random_context): bound, they depend
// only on (seed, path, step, sample), so a recomputed or pipelined forward draws the same ones.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override { return dropout(x, p_, is_training(), random_source("drop")); }
  std::string extra_repr() const override { return "p=" + std::to_string(p_); }

 private:
  double p_;
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : Module("Flatten"), start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_, end_); }

 private:
  int64_t start_, end_;
};

}  // namespace minipipe::nn
