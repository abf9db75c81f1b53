// Gradient check by central differences in float64 (as flashlight's AutogradTestUtils, llm.c):
// compares the gradients autograd computes with numerical ones, element by element. The test
// suite runs it over every differentiable op (tests/test_gradcheck.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace minipipe::autograd {

struct GradcheckOptions {
  double eps = 1e-6;   // perturbation of each input element
  double atol = 1e-5;  // an element passes when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  uint64_t seed = 0;   // seeds the random output gradient r
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0;  // max |analytic - numeric| over every checked element
  double max_rel_err = 0;  // max |analytic - numeric| / |numeric| (elements with numeric != 0)
  int64_t checked = 0;     // how many input elements were perturbed
  std::string report;      // names the input, element, analytic and numeric value of the worst element
};

// Checks the gradients of `fn` with respect to every input that requires grad.
//
//   y = fn(inputs);  r = randn like y (seeded: opts.seed);  L(inputs) = sum(y * r)
//   analytic: clear the inputs' .grad(), y.backward(r)   -> dL/dx for every input x
//   numeric:  for each element x_i of each input, (L(x_i + eps) - L(x_i - eps)) / (2 eps),
//             evaluated under NoGradGuard, x_i restored afterwards
//
// A random r (rather than backward() of sum(y)) checks every output element's gradient path
// with a different weight, so a transposed or mis-broadcast gradient cannot cancel out.
// Inputs must be float64, contiguous leaves (their storage is perturbed in place, so `fn` must
// read them afresh on every call, and anything random inside `fn` must reseed its generator on
// every call). Inputs that do not require grad are held constant. The inputs' .grad() are
// restored to what they were before the call.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts = {});

}  // namespace minipipe::autograd
