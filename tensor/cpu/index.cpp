// CPU indexing: index_select and its backward index_add, one_hot (cat and stack, built from copies, are in tensor/dispatch.cpp).
#include <cstring>

#include "tensor/cpu/loops.h"
#include "tensor/factory.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {
void check_index(const Tensor& t_shape_src, const Shape& shape, int64_t dim, const Tensor& index, const char* op) {
  MP_CHECK(index.dtype() == DType::Int64, op, ": index must be int64, got ", dtype_name(index.dtype()));
  MP_CHECK(index.dim() == 1, op, ": index must be 1-D, got shape ", shape_str(index.sizes()));
  Tensor idx = contiguous(index);
  const int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    MP_CHECK(p[i] >= 0 && p[i] < shape[dim], op, ": index ", p[i], " at position ", i,
             " is out of range for dim ", dim, " of size ", shape[dim], " (shape ", shape_str(shape), ")");
}
}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  MP_CHECK(t.dim() > 0, "index_select: expected at least a 1-D tensor");
  dim = wrap_dim(dim, t.dim(), "index_select");
  check_index(t, t.sizes(), dim, index, "index_select");
  Tensor idx = contiguous(index);
  Shape shape = t.sizes();
  shape[dim] = idx.numel();
  Tensor out = empty(shape, t.options());
  const int64_t* p = idx.data_ptr<int64_t>();
  if (t.is_contiguous()) {
    // View t as [outer, n, inner]: each selected slice is `outer` runs of `inner` elements.
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= t.size(d);
    for (int64_t d = dim + 1; d < t.dim(); ++d) inner *= t.size(d);
    const int64_t n = t.size(dim), k = idx.numel(), esize = static_cast<int64_t>(element_size(t.dtype()));
    const char* src = static_cast<const char*>(t.raw_data());
    char* dst = static_cast<char*>(out.raw_data());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < k; ++i)
        std::memcpy(dst + ((o * k + i) * inner) * esize, src + ((o * n + p[i]) * inner) * esize, inner * esize);
    return out;
  }
  for (int64_t i = 0; i < idx.numel(); ++i) copy_(select(out, dim, i), select(t, dim, p[i]));
  return out;
}

Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim(dim, static_cast<int64_t>(shape.size()), "index_add");
  check_index(src, shape, dim, index, "index_add");
  Shape expect = shape;
  expect[dim] = index.numel();
  MP_CHECK(src.sizes() == expect, "index_add: source shape ", shape_str(src.sizes()), " should be ",
           shape_str(expect));
  Tensor out = zeros(shape, src.options());
  Tensor idx = contiguous(index);
  const int64_t* p = idx.data_ptr<int64_t>();
  // In index order: repeated indices accumulate in a fixed order, so the result is exact.
  for (int64_t i = 0; i < idx.numel(); ++i) add_(select(out, dim, p[i]), select(src, dim, i));
  return out;
}

Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype) {
  MP_CHECK(index.dtype() == DType::Int64, "one_hot: index must be int64, got ", dtype_name(index.dtype()));
  MP_CHECK(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  Tensor idx = contiguous(index);
  Shape shape = idx.sizes();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, dtype);
  const int64_t* p = idx.data_ptr<int64_t>();
  MP_DISPATCH_ALL(dtype, "one_hot", [&] {
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t i = 0; i < idx.numel(); ++i) {
      MP_CHECK(p[i] >= 0 && p[i] < num_classes, "one_hot: class ", p[i], " at position ", i,
               " is out of range for ", num_classes, " classes");
      o[i * num_classes + p[i]] = scalar_t(1);
    }
  });
  return out;
}

}  // namespace minipipe::cpu
