// Differentiable reductions: the gradient of a sum broadcasts back over the reduced dims; a
// mean's is scaled by 1/count; amax's flows only to the (first) maximum.
#include <algorithm>

#include "autograd/functions.h"

namespace minipipe {

using autograd::InputGrads;
using autograd::record;

namespace {
// Grad of a reduction output, reshaped so it broadcasts against the input (keepdim form).
Tensor unreduce(const Tensor& g, const Shape& in_shape, std::vector<int64_t> dims, bool keepdim) {
  if (in_shape.empty()) return ops::reshape(g, {});  // a 0-dim input: its grad is 0-dim too
  if (keepdim || dims.empty()) return ops::expand(g.dim() == 0 ? ops::reshape(g, Shape(in_shape.size(), 1)) : g, in_shape);
  const int64_t nd = static_cast<int64_t>(in_shape.size());
  for (auto& d : dims) d = wrap_dim(d, nd, "sum");
  std::sort(dims.begin(), dims.end());
  Tensor r = g;
  for (auto d : dims) r = ops::unsqueeze(r, d);
  return ops::expand(r, in_shape);
}
}  // namespace

Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  return record("SumBackward", ops::sum(t, dims, keepdim), {t},
                [shape = t.sizes(), dims, keepdim](const Tensor& g, InputGrads& gi) {
                  gi[0] = ops::contiguous(unreduce(g, shape, dims, keepdim));
                });
}

Tensor sum(const Tensor& t) { return sum(t, {}, false); }

Tensor mean(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  Tensor out = ops::mean(t, dims, keepdim);
  const double scale = out.numel() == 0 ? 0.0 : static_cast<double>(out.numel()) / static_cast<double>(t.numel());
  return record("MeanBackward", out, {t}, [shape = t.sizes(), dims, keepdim, scale](const Tensor& g, InputGrads& gi) {
    gi[0] = ops::mul_scalar(unreduce(g, shape, dims, keepdim), scale);
  });
}

Tensor mean(const Tensor& t) { return mean(t, {}, false); }

Tensor amax(const Tensor& t, int64_t dim, bool keepdim) {
  auto [values, indices] = ops::max(t, dim, true);
  Tensor out = keepdim ? values : ops::squeeze(values, dim);
  return record("AmaxBackward", out, {t}, [idx = indices, shape = t.sizes(), dim](const Tensor& g, InputGrads& gi) {
    Tensor gk = g.dim() == static_cast<int64_t>(shape.size()) ? g : ops::unsqueeze(g, dim);
    // Scatter each gradient to its argmax: one_hot(argmax) along `dim`, times the gradient.
    const int64_t d = wrap_dim(dim, static_cast<int64_t>(shape.size()), "amax");
    Tensor hot = ops::one_hot(ops::squeeze(idx, d), shape[d], g.dtype());  // class dim last
    std::vector<int64_t> perm;  // move that last dim back to position d
    for (int64_t i = 0; i < d; ++i) perm.push_back(i);
    perm.push_back(hot.dim() - 1);
    for (int64_t i = d; i < hot.dim() - 1; ++i) perm.push_back(i);
    gi[0] = ops::mul(ops::permute(hot, perm), gk);
  });
}

}  // namespace minipipe
