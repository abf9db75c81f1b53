// Exercise 1, strides and views: the reference solution (what tensor/view.cpp and the strided copy
// in tensor/cpu/ do, written out in one place). Graded by the same tests as the stub.
#include <algorithm>
#include <cstring>
#include <vector>

#include "exercise.h"
#include "tensor/ops.h"

namespace exercises {

using namespace minipipe;

Shape row_major_strides(const Shape& sizes) {
  // The last dim moves by 1 element; each dim before it by the product of the sizes after it (a
  // size 0 counts as 1, as in PyTorch, so no stride is 0 and an empty tensor's strides stay useful).
  Shape strides(sizes.size(), 1);
  int64_t step = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    strides[i] = step;
    step *= std::max<int64_t>(sizes[i], 1);
  }
  return strides;
}

Tensor transpose_view(const Tensor& t, int64_t d0, int64_t d1) {
  d0 = wrap_dim(d0, t.dim(), "transpose_view");  // -1 -> the last dim; out of range -> Error
  d1 = wrap_dim(d1, t.dim(), "transpose_view");
  Shape sizes = t.sizes(), strides = t.strides();
  if (t.dim() > 0) {
    std::swap(sizes[d0], sizes[d1]);
    std::swap(strides[d0], strides[d1]);
  }
  // Only the geometry changes: the same storage, read in another order.
  return make_view(t.storage(), sizes, strides, t.storage_offset(), t.dtype());
}

Tensor contiguous_copy(const Tensor& t) {
  Tensor out = empty(t.sizes(), t.options());
  const int64_t n = t.numel(), nd = t.dim();
  if (n == 0) return out;
  const size_t esize = element_size(t.dtype());
  // raw_data() already points at element [0, 0, ...] (the storage offset applied).
  const char* src = static_cast<const char*>(t.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  // Walk the elements in row-major order with an odometer over the index; `pos` is the element's
  // offset in t's storage: sum of index[d] * stride[d].
  std::vector<int64_t> index(static_cast<size_t>(nd), 0);
  int64_t pos = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + i * esize, src + pos * static_cast<int64_t>(esize), esize);
    for (int64_t d = nd - 1; d >= 0; --d) {  // advance the odometer
      if (++index[d] < t.size(d)) {
        pos += t.stride(d);
        break;
      }
      pos -= (t.size(d) - 1) * t.stride(d);
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace exercises
