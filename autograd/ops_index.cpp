// Differentiable joining and indexing: cat / stack split the gradient back into pieces;
// index_select scatters it back with index_add (repeated indices accumulate).
#include "autograd/functions.h"

namespace minipipe {

using autograd::InputGrads;
using autograd::record;

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  Tensor out = ops::cat(ts, dim);
  const int64_t d = wrap_dim(dim, ts[0].dim(), "cat");
  std::vector<int64_t> lengths;
  for (const Tensor& t : ts) lengths.push_back(t.size(d));
  return autograd::record_list("CatBackward", out, ts, [d, lengths](const Tensor& g, InputGrads& gi) {
    int64_t at = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      if (gi.needs(i)) gi[i] = ops::narrow(g, d, at, lengths[i]);
      at += lengths[i];
    }
  });
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  MP_CHECK(!ts.empty(), "stack: expected a non-empty list of tensors");
  const int64_t d = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (const Tensor& t : ts) us.push_back(unsqueeze(t, d));
  return cat(us, d);
}

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  Tensor out = ops::index_select(t, dim, index);
  return record("IndexSelectBackward", out, {t}, [s = t.sizes(), dim, idx = index.detach()](const Tensor& g, InputGrads& gi) {
    gi[0] = ops::index_add(s, dim, idx, g);
  });
}

}  // namespace minipipe
