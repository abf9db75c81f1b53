// How the CUDA reductions and softmax family lay a tensor out for their [rows, n] kernels: the
// reduced dim moved last, the other dims keeping their order, contiguous. Plain tensor ops, no CUDA:
// tests/test_cuda.cpp checks the layout on the CPU, where it runs on every machine.
#pragma once

#include <vector>

#include "tensor/ops.h"

namespace minipipe::cuda {

// t with `dim` moved last, contiguous: row r holds the elements the result without `dim` has at
// flat index r (what max / argmax write). A transpose of `dim` and the last dim would also swap the
// last dim into `dim`'s place, and the rows would come out in another order.
inline Tensor rows_last(const Tensor& t, int64_t dim) {
  if (dim == t.dim() - 1) return ops::contiguous(t);
  std::vector<int64_t> order;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (d != dim) order.push_back(d);
  order.push_back(dim);
  return ops::contiguous(ops::permute(t, order));
}

// Undoes rows_last: r laid out as rows_last(t, dim) left it, back in t's dim order (contiguous).
inline Tensor rows_back(const Tensor& r, int64_t dim, int64_t ndim) {
  if (dim == ndim - 1) return r;
  std::vector<int64_t> order;  // result dim d comes from moved dim order[d]
  for (int64_t d = 0; d < ndim; ++d) order.push_back(d < dim ? d : d == dim ? ndim - 1 : d - 1);
  return ops::contiguous(ops::permute(r, order));
}

}  // namespace minipipe::cuda
