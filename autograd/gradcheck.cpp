// The gradient checker: analytic gradients from one backward with a random output gradient,
// numerical ones from central differences of L = sum(fn(x) * r), both in float64.
#include "autograd/gradcheck.h"

#include <cmath>
#include <cstdio>

#include "autograd/node.h"
#include "tensor/factory.h"

namespace minipipe::autograd {

namespace {

// L = sum(y * r), accumulated in double in a fixed order.
double weighted_sum(const Tensor& y, const std::vector<double>& r) {
  MP_CHECK(y.defined(), "gradcheck: fn returned an undefined tensor");
  const std::vector<double> v = y.to_vector<double>();
  MP_CHECK(v.size() == r.size(), "gradcheck: fn's output changed size between calls: ", r.size(),
           " then ", v.size(), " elements (", shape_str(y.sizes()), ")");
  double l = 0;
  for (size_t i = 0; i < v.size(); ++i) l += v[i] * r[i];
  return l;
}

// "[1, 2]": the multi-dimensional index of flat element `i` of `shape`.
std::string index_str(const Shape& shape, int64_t i) {
  Shape idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] == 0 ? 0 : i % shape[d];
    i = shape[d] == 0 ? 0 : i / shape[d];
  }
  return shape_str(idx);
}

std::string fmt(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", x);
  return buf;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts) {
  MP_CHECK(opts.eps > 0, "gradcheck: eps must be positive, got ", opts.eps);
  bool any = false;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    MP_CHECK(x.defined(), "gradcheck: input ", k, " is undefined");
    MP_CHECK(x.dtype() == DType::Float64, "gradcheck: input ", k, " ", shape_str(x.sizes()),
             " has dtype ", dtype_name(x.dtype()),
             "; central differences need float64 (create it with DType::Float64)");
    MP_CHECK(x.is_contiguous(), "gradcheck: input ", k, " ", shape_str(x.sizes()), " with strides ",
             shape_str(x.strides()), " is not contiguous; pass contiguous(x) and build views inside fn");
    MP_CHECK(x.device().is_cpu(), "gradcheck: input ", k, " is on ", x.device().str(), ", expected cpu");
    MP_CHECK(x.is_leaf(), "gradcheck: input ", k, " is not a leaf (it has a grad_fn); pass x.detach()");
    any = any || x.requires_grad();
  }
  MP_CHECK(any, "gradcheck: no input requires grad; call set_requires_grad(true) on the inputs to check");

  // Analytic: one backward of y with output gradient r.
  std::vector<Tensor> saved_grads;
  for (const Tensor& x : inputs) {
    saved_grads.push_back(x.grad());
    Tensor handle = x;  // a handle on the same TensorImpl
    handle.mutable_grad() = Tensor();
  }
  Tensor y = fn(inputs);
  MP_CHECK(y.defined(), "gradcheck: fn returned an undefined tensor");
  Generator gen(opts.seed);
  Tensor r = randn(y.sizes(), is_floating(y.dtype()) ? y.dtype() : DType::Float64, &gen);
  const std::vector<double> rv = r.to_vector<double>();
  // An output that does not require grad has no graph: every analytic gradient is zero then
  // (and the numeric ones will say whether that is right).
  if (y.requires_grad()) y.backward(r);
  std::vector<Tensor> analytic;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor x = inputs[k];
    Tensor g = x.grad();
    if (g.defined())
      MP_CHECK(g.sizes() == x.sizes(), "gradcheck: the gradient of input ", k, " has shape ",
               shape_str(g.sizes()), ", the input has ", shape_str(x.sizes()));
    analytic.push_back(g.defined() ? g : zeros(x.sizes(), DType::Float64));
    x.mutable_grad() = saved_grads[k];
  }

  // Numeric: central differences, one element at a time.
  GradcheckResult res;
  double worst_ratio = -1;
  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    double* p = x.data_ptr<double>();
    const std::vector<double> a = analytic[k].to_vector<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double orig = p[i];
      p[i] = orig + opts.eps;
      const double lp = weighted_sum(fn(inputs), rv);
      p[i] = orig - opts.eps;
      const double lm = weighted_sum(fn(inputs), rv);
      p[i] = orig;
      const double n = (lp - lm) / (2 * opts.eps);
      const double diff = std::fabs(a[i] - n), tol = opts.atol + opts.rtol * std::fabs(n);
      ++res.checked;
      res.max_abs_err = std::max(res.max_abs_err, diff);
      if (n != 0) res.max_rel_err = std::max(res.max_rel_err, diff / std::fabs(n));
      const bool pass = diff <= tol;  // false for NaN too
      const double ratio = std::isnan(diff) ? INFINITY : diff / tol;
      if (!pass) res.ok = false;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        res.report = std::string(pass ? "worst element" : "worst mismatch") + ": input " + std::to_string(k) + " " +
                     shape_str(x.sizes()) + " element " + std::to_string(i) + " " +
                     index_str(x.sizes(), i) + ": analytic " + fmt(a[i]) + ", numeric " + fmt(n) +
                     " (|diff| " + fmt(diff) + ", tolerance " + fmt(tol) + ")";
      }
    }
  }
  if (res.checked == 0) res.report = "no elements to check (inputs requiring grad are empty)";
  res.report = std::string(res.ok ? "ok" : "FAILED") + " (" + std::to_string(res.checked) +
               " elements, max abs err " + fmt(res.max_abs_err) + ", max rel err " +
               fmt(res.max_rel_err) + "); " + res.report;
  return res;
}

}  // namespace minipipe::autograd
