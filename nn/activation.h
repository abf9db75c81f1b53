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

class Dropout : public Module {
 public:
  // gen: where masks come from (null: the default generator). A pipeline stage that recomputes
  // its forward must replay the same masks, so it can hand each stage its own generator.
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override { return dropout(x, p_, is_training(), gen_); }
  std::string extra_repr() const override { return "p=" + std::to_string(p_); }
  void set_generator(Generator* gen) { gen_ = gen; }

 private:
  double p_;
  Generator* gen_;
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
