// SGD and AdamW: each update is one fused loop over a parameter's elements (outside autograd), with
// the optimizer state kept per parameter. The loops are raw ops, ops::sgd_step_ and ops::adamw_step_
// (a kernel per device: tensor/cpu/optim.cpp, tensor/cuda/optim.cu); on the CPU large parameters split
// the loop across the intra-op threads, and elements are independent, so the bits are the same on any
// thread count.
#include "nn/optim.h"

#include <cmath>

#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay) : groups_(std::move(groups)) {
  MP_CHECK(lr >= 0, "optimizer: learning rate must be non-negative, got ", lr);
  MP_CHECK(weight_decay >= 0, "optimizer: weight decay must be non-negative, got ", weight_decay);
  for (auto& g : groups_) {
    if (g.lr < 0) g.lr = lr;
    if (g.weight_decay < 0) g.weight_decay = weight_decay;
    for (const Tensor& p : g.params) {
      MP_CHECK(p.defined() && p.requires_grad() && p.is_leaf(),
               "optimizer: every parameter must be a leaf tensor that requires grad");
      MP_CHECK(p.is_contiguous(), "optimizer: parameters must be contiguous, got shape ",
               shape_str(p.sizes()), " with strides ", shape_str(p.strides()));
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (Tensor p : g.params) p.mutable_grad() = Tensor();
}

void Optimizer::set_lr(double lr) {
  MP_CHECK(lr >= 0, "optimizer: learning rate must be non-negative, got ", lr);
  for (auto& g : groups_) g.lr = lr;
}

namespace {
std::vector<std::vector<Tensor>> empty_state(const std::vector<ParamGroup>& groups) {
  std::vector<std::vector<Tensor>> s;
  for (const auto& g : groups) s.emplace_back(g.params.size());
  return s;
}

int64_t bytes_of(const std::vector<std::vector<Tensor>>& state) {
  int64_t n = 0;
  for (const auto& group : state)
    for (const Tensor& t : group)
      if (t.defined()) n += static_cast<int64_t>(t.nbytes());
  return n;
}

}  // namespace

Tensor Optimizer::checked_grad(const Tensor& p) {
  Tensor g = ops::contiguous(p.grad());
  MP_CHECK(g.sizes() == p.sizes() && g.dtype() == p.dtype(), "optimizer: gradient ",
           shape_str(g.sizes()), " ", dtype_name(g.dtype()), " does not match parameter ",
           shape_str(p.sizes()), " ", dtype_name(p.dtype()));
  return g;
}

SGD::SGD(std::vector<Tensor> params, SGDOptions opts) : SGD(std::vector<ParamGroup>{{std::move(params)}}, opts) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opts)
    : Optimizer(std::move(groups), opts.lr, opts.weight_decay), opts_(opts), momentum_(empty_state(groups_)) {
  MP_CHECK(opts.momentum >= 0, "SGD: momentum must be non-negative, got ", opts.momentum);
  MP_CHECK(!opts.nesterov || (opts.momentum > 0 && opts.dampening == 0),
           "SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum=", opts.momentum,
           " dampening=", opts.dampening);
}

void SGD::step() {
  for_each_grad([&](const ParamGroup& group, size_t gi, size_t pi, const Tensor& p, const Tensor& g) {
    Tensor& buf = momentum_[gi][pi];
    const bool first = opts_.momentum != 0 && !buf.defined();
    if (first) buf = zeros(p.sizes(), p.options());
    ops::sgd_step_(p, g, buf,
                   {.lr = group.lr, .momentum = opts_.momentum, .dampening = opts_.dampening,
                    .weight_decay = group.weight_decay, .nesterov = opts_.nesterov, .first = first});
  });
}

int64_t SGD::state_bytes() const { return bytes_of(momentum_); }
int64_t AdamW::state_bytes() const { return bytes_of(m_) + bytes_of(v_); }

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions opts) : AdamW(std::vector<ParamGroup>{{std::move(params)}}, opts) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions opts)
    : Optimizer(std::move(groups), opts.lr, opts.weight_decay), opts_(opts), m_(empty_state(groups_)), v_(empty_state(groups_)) {
  for (const auto& g : groups_) steps_.emplace_back(g.params.size(), 0);
  MP_CHECK(opts.beta1 >= 0 && opts.beta1 < 1 && opts.beta2 >= 0 && opts.beta2 < 1,
           "AdamW: betas must be in [0, 1), got (", opts.beta1, ", ", opts.beta2, ")");
  MP_CHECK(opts.eps > 0, "AdamW: eps must be positive, got ", opts.eps);
}

void AdamW::step() {
  for_each_grad([&](const ParamGroup& group, size_t gi, size_t pi, const Tensor& p, const Tensor& g) {
    if (!m_[gi][pi].defined()) {
      m_[gi][pi] = zeros(p.sizes(), p.options());
      v_[gi][pi] = zeros(p.sizes(), p.options());
    }
    ops::adamw_step_(p, g, m_[gi][pi], v_[gi][pi],
                     {.lr = group.lr, .beta1 = opts_.beta1, .beta2 = opts_.beta2, .eps = opts_.eps,
                      .weight_decay = group.weight_decay, .step = ++steps_[gi][pi]});
  });
}

double grad_norm_squared(const std::vector<Tensor>& params) {
  double total = 0;
  for (const Tensor& p : params)
    if (p.grad().defined()) total += ops::sum(ops::mul(p.grad(), p.grad())).item();
  return total;
}

void clip_grads_to(const std::vector<Tensor>& params, double norm, double max_norm) {
  MP_CHECK(max_norm > 0, "clip_grad_norm_: max_norm must be positive, got ", max_norm);
  if (norm <= max_norm) return;
  const double scale = max_norm / (norm + 1e-6);  // PyTorch's clip_coef
  for (const Tensor& p : params)
    if (p.grad().defined()) ops::mul_scalar_(p.grad(), scale);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  MP_CHECK(max_norm > 0, "clip_grad_norm_: max_norm must be positive, got ", max_norm);
  const double norm = std::sqrt(grad_norm_squared(params));
  clip_grads_to(params, norm, max_norm);
  return norm;
}

double cosine_lr(int64_t step, int64_t total, double lr_max, double lr_min, int64_t warmup) {
  MP_CHECK(total > 0 && warmup >= 0, "cosine_lr: need total > 0 and warmup >= 0, got total=", total,
           " warmup=", warmup);
  if (step < warmup) return lr_max * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (step >= total) return lr_min;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(total - warmup, 1));
  return lr_min + 0.5 * (lr_max - lr_min) * (1 + std::cos(M_PI * progress));
}

}  // namespace minipipe::optim
