// Differentiable views. A view's backward maps the gradient back to the input's geometry:
// reshape back, transpose back, pad a narrow with zeros, sum an expand.
#include "autograd/functions.h"

namespace minipipe {

using autograd::InputGrads;
using autograd::record;

Tensor view(const Tensor& t, Shape shape) {
  return record("ViewBackward", ops::view(t, std::move(shape)), {t},
                [s = t.sizes()](const Tensor& g, InputGrads& gi) { gi[0] = ops::reshape(g, s); });
}

Tensor reshape(const Tensor& t, Shape shape) {
  return record("ReshapeBackward", ops::reshape(t, std::move(shape)), {t},
                [s = t.sizes()](const Tensor& g, InputGrads& gi) { gi[0] = ops::reshape(g, s); });
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  return record("FlattenBackward", ops::flatten(t, start_dim, end_dim), {t},
                [s = t.sizes()](const Tensor& g, InputGrads& gi) { gi[0] = ops::reshape(g, s); });
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  return record("TransposeBackward", ops::transpose(t, d0, d1), {t},
                [d0, d1](const Tensor& g, InputGrads& gi) { gi[0] = ops::transpose(g, d0, d1); });
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  Tensor out = ops::permute(t, dims);
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[wrap_dim(dims[i], t.dim(), "permute")] = static_cast<int64_t>(i);
  return record("PermuteBackward", out, {t}, [inverse](const Tensor& g, InputGrads& gi) { gi[0] = ops::permute(g, inverse); });
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor out = ops::slice(t, dim, start, end, step);
  const int64_t d = wrap_dim(dim, t.dim(), "slice");
  const int64_t first = ops::normalize_slice(t.size(d), start, end).first;  // as the forward did
  return record("SliceBackward", out, {t}, [s = t.sizes(), d, first, step](const Tensor& g, InputGrads& gi) {
    Tensor gx = zeros(s, g.options());
    ops::copy_(ops::slice(gx, d, first, first + g.size(d) * step, step), g);
    gi[0] = gx;
  });
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  MP_CHECK(t.dim() > 0, "narrow: cannot narrow a 0-dim tensor");
  ops::narrow(t, dim, start, length);  // validates the range with narrow's own message
  return slice(t, dim, start, start + length, 1);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  Tensor out = ops::select(t, dim, index);
  const int64_t d = wrap_dim(dim, t.dim(), "select");
  const int64_t i = index < 0 ? index + t.size(d) : index;
  return record("SelectBackward", out, {t}, [s = t.sizes(), d, i](const Tensor& g, InputGrads& gi) {
    Tensor gx = zeros(s, g.options());
    ops::copy_(ops::select(gx, d, i), g);
    gi[0] = gx;
  });
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  return record("UnsqueezeBackward", ops::unsqueeze(t, dim), {t},
                [s = t.sizes()](const Tensor& g, InputGrads& gi) { gi[0] = ops::reshape(g, s); });
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  return record("SqueezeBackward", ops::squeeze(t, dim), {t},
                [s = t.sizes()](const Tensor& g, InputGrads& gi) { gi[0] = ops::reshape(g, s); });
}

Tensor expand(const Tensor& t, const Shape& shape) {
  return record("ExpandBackward", ops::expand(t, shape), {t},
                [s = t.sizes()](const Tensor& g, InputGrads& gi) { gi[0] = ops::sum_to(g, s); });
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  return record("ContiguousBackward", ops::contiguous(t), {t}, [](const Tensor& g, InputGrads& gi) { gi[0] = g; });
}

Tensor to(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  return record("ToBackward", ops::to(t, dtype), {t},
                [from = t.dtype()](const Tensor& g, InputGrads& gi) { gi[0] = ops::to(g, from); });
}

}  // namespace minipipe
