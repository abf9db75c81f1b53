// CPU optimizer kernels: the fused AdamW and SGD steps (ops::adamw_step_ and ops::sgd_step_ give the
// arithmetic). One loop
// over the elements, split across the intra-op threads; elements are independent, so the bits are
// the same on any thread count.
#include <cmath>

#include "tensor/cpu/kernels.h"
#include "tensor/op_checks.h"
#include "tensor/threads.h"

namespace minipipe::cpu {

namespace {
// Elements below which an update runs on one thread (a few microseconds of work: less than waking a
// second thread costs).
constexpr int64_t kOptimizerGrain = 16384;
}  // namespace

void adamw_step_(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s) {
  checks::adamw(p, grad, m, v, s);
  const double t = static_cast<double>(s.step);
  const double bc1 = 1 - std::pow(s.beta1, t), bc2 = 1 - std::pow(s.beta2, t);
  MP_DISPATCH_FLOAT(p.dtype(), "AdamW", [&] {
    using T = scalar_t;
    T* pp = p.data_ptr<T>();
    const T* pg = grad.data_ptr<T>();
    T* pm = m.data_ptr<T>();
    T* pv = v.data_ptr<T>();
    const T b1 = static_cast<T>(s.beta1), b2 = static_cast<T>(s.beta2);
    const T decay = static_cast<T>(1 - s.lr * s.weight_decay);
    const T step = static_cast<T>(s.lr / bc1), inv_sqrt_bc2 = static_cast<T>(1 / std::sqrt(bc2));
    const T eps = static_cast<T>(s.eps);
    parallel_for(p.numel(), kOptimizerGrain, [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        pp[i] *= decay;
        pm[i] = b1 * pm[i] + (1 - b1) * pg[i];
        pv[i] = b2 * pv[i] + (1 - b2) * pg[i] * pg[i];
        pp[i] -= step * pm[i] / (std::sqrt(pv[i]) * inv_sqrt_bc2 + eps);
      }
    });
  });
}

void sgd_step_(const Tensor& p, const Tensor& grad, const Tensor& buf, const SGDStep& s) {
  checks::sgd(p, grad, buf, s);
  MP_DISPATCH_FLOAT(p.dtype(), "SGD", [&] {
    using T = scalar_t;
    T* pp = p.data_ptr<T>();
    const T* pg = grad.data_ptr<T>();
    T* pb = buf.defined() ? buf.data_ptr<T>() : nullptr;
    const T lr = static_cast<T>(s.lr), wd = static_cast<T>(s.weight_decay);
    const T mu = static_cast<T>(s.momentum), damp = static_cast<T>(1 - s.dampening);
    const bool nesterov = s.nesterov, first = s.first;
    parallel_for(p.numel(), kOptimizerGrain, [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T d = pg[i] + wd * pp[i];
        if (pb) {
          pb[i] = first ? d : mu * pb[i] + damp * d;
          d = nesterov ? d + mu * pb[i] : pb[i];
        }
        pp[i] -= lr * d;
      }
    });
  });
}

}  // namespace minipipe::cpu
