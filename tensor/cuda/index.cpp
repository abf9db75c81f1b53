// The CUDA backend's indexing: index_select / index_add / one_hot (embedding.cu); cat is built from
// copies in tensor/dispatch.cpp. Shape checks as the CPU's (tensor/cpu/index.cpp);
// index ranges are checked by the kernels through a device flag, read back once per call.
#include "tensor/cuda/ops_common.h"

namespace minipipe::cuda {

namespace {

// [outer, n, inner] around `dim` of shape.
void split_at(const Shape& shape, int64_t dim, int64_t& outer, int64_t& inner) {
  outer = inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) inner *= shape[d];
}

Tensor checked_index(const char* op, const Tensor& index) {
  MP_CHECK(index.dtype() == DType::Int64, op, ": index must be int64, got ", dtype_name(index.dtype()));
  MP_CHECK(index.dim() == 1, op, ": index must be 1-D, got shape ", shape_str(index.sizes()));
  return ops::contiguous(index);
}

}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  MP_CHECK(t.dim() > 0, "index_select: expected at least a 1-D tensor");
  dim = wrap_dim(dim, t.dim(), "index_select");
  Tensor idx = checked_index("index_select", index), x = ops::contiguous(t);
  Shape shape = t.sizes();
  shape[dim] = idx.numel();
  Tensor out = empty(shape, t.options());
  int64_t outer, inner;
  split_at(t.sizes(), dim, outer, inner);
  DeviceFlag bad(t.device());
  launch_index_select(x.raw_data(), ptr<int64_t>(idx), out.raw_data(), scalar_type(t.dtype()), bad.get(), outer,
                      t.size(dim), idx.numel(), inner, stream_of(t));
  bad.check("index_select: an index is out of range for dim ", dim, " of size ", t.size(dim), " (shape ",
            shape_str(t.sizes()), ")");
  return out;
}

Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim(dim, static_cast<int64_t>(shape.size()), "index_add");
  Tensor idx = checked_index("index_add", index);
  Shape expect = shape;
  expect[dim] = index.numel();
  MP_CHECK(src.sizes() == expect, "index_add: source shape ", shape_str(src.sizes()), " should be ", shape_str(expect));
  check_f32("index_add", src);
  Tensor s = ops::contiguous(src), out = zeros(shape, src.options());
  int64_t outer, inner;
  split_at(shape, dim, outer, inner);
  DeviceFlag bad(src.device());
  launch_index_add(ptr<float>(s), ptr<int64_t>(idx), ptr<float>(out), bad.get(), outer, shape[dim], idx.numel(), inner,
                   stream_of(src));
  bad.check("index_add: an index is out of range for dim ", dim, " of size ", shape[dim], " (shape ",
            shape_str(shape), ")");
  return out;
}

Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype) {
  MP_CHECK(index.dtype() == DType::Int64, "one_hot: index must be int64, got ", dtype_name(index.dtype()));
  MP_CHECK(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  Tensor idx = ops::contiguous(index);
  Shape shape = idx.sizes();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, {dtype, index.device()});
  DeviceFlag bad(index.device());
  launch_one_hot(ptr<int64_t>(idx), out.raw_data(), scalar_type(dtype), bad.get(), idx.numel(), num_classes,
                 stream_of(index));
  bad.check("one_hot: a class of ", shape_str(index.sizes()), " is out of range for ", num_classes, " classes");
  return out;
}

}  // namespace minipipe::cuda
