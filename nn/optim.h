// Optimizers with PyTorch's update rules: optim::SGD (momentum, dampening, weight decay,
// Nesterov) and optim::AdamW (decoupled weight decay). Parameters come in groups, each with
// its own lr and weight decay (e.g. no decay on biases and norms).
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace minipipe::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = -1;            // < 0: the optimizer's default
  double weight_decay = -1;  // < 0: the optimizer's default
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Applies one update from the parameters' .grad(); parameters without a grad are skipped.
  virtual void step() = 0;
  void zero_grad();
  void set_lr(double lr);  // every group (what an lr schedule calls each step)
  double lr() const { return groups_.empty() ? 0.0 : groups_[0].lr; }
  // Bytes of optimizer state held now (moments, momentum buffers; allocated at a parameter's first step).
  virtual int64_t state_bytes() const { return 0; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }

 protected:
  Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay);
  // Calls fn(group, group index, param index, param, contiguous grad) for every parameter that
  // has a gradient, after checking the gradient matches the parameter.
  template <typename Fn>
  void for_each_grad(Fn fn) const {
    for (size_t gi = 0; gi < groups_.size(); ++gi)
      for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
        const Tensor& p = groups_[gi].params[pi];
        if (p.grad().defined()) fn(groups_[gi], gi, pi, p, checked_grad(p));
      }
  }
  std::vector<ParamGroup> groups_;

 private:
  static Tensor checked_grad(const Tensor& p);
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

// g <- g + wd p;  b <- mu b + (1 - dampening) g  (b = g on the first step);
// g <- nesterov ? g + mu b : b;  p <- p - lr g
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions opts);
  SGD(std::vector<ParamGroup> groups, SGDOptions opts);
  void step() override;
  int64_t state_bytes() const override;

 private:
  SGDOptions opts_;
  std::vector<std::vector<Tensor>> momentum_;  // per group, per param (undefined until used)
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
// p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t = this parameter's step count
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions opts);
  AdamW(std::vector<ParamGroup> groups, AdamWOptions opts);
  void step() override;
  int64_t state_bytes() const override;

 private:
  AdamWOptions opts_;
  std::vector<std::vector<Tensor>> m_, v_;
  std::vector<std::vector<int64_t>> steps_;  // per parameter, as PyTorch: counts steps with a grad
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);
// Its two halves, for when the parameters are spread over ranks (the pipeline all-reduces the
// squared norm in between): the sum of squares of the defined gradients, and the scaling that
// clips gradients whose global norm is `norm` to max_norm (PyTorch's coefficient).
double grad_norm_squared(const std::vector<Tensor>& params);
void clip_grads_to(const std::vector<Tensor>& params, double norm, double max_norm);

// Linear warm-up for `warmup` steps to lr_max, then cosine decay to lr_min at `total` steps.
double cosine_lr(int64_t step, int64_t total, double lr_max, double lr_min = 0.0, int64_t warmup = 0);

}  // namespace minipipe::optim
