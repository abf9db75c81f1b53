// View ops: new sizes/strides/offset over the same storage, never a copy (except reshape and
// flatten when the strides make a view impossible). Device-independent: pure metadata.
#include <algorithm>
#include <numeric>
#include <tuple>

#include "tensor/ops.h"

namespace minipipe::ops {

namespace {

Tensor restride(const Tensor& t, Shape sizes, Shape strides, int64_t offset) {
  return make_view(t.storage(), std::move(sizes), std::move(strides), offset, t.dtype());
}

// Resolve one -1 in `shape` against numel.
Shape infer_shape(const Tensor& t, Shape shape, const char* op) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MP_CHECK(infer < 0, op, ": only one dimension can be -1, got ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      MP_CHECK(shape[i] >= 0, op, ": invalid size ", shape[i], " in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    MP_CHECK(known != 0 && t.numel() % known == 0, op, ": shape ", shape_str(shape),
             " is invalid for input of shape ", shape_str(t.sizes()));
    shape[infer] = t.numel() / known;
  }
  MP_CHECK(shape_numel(shape) == t.numel(), op, ": shape ", shape_str(shape),
           " is invalid for input of shape ", shape_str(t.sizes()), " (", t.numel(), " elements)");
  return shape;
}

// Strides for viewing t with `shape` without copying, if possible (PyTorch's computeStride):
// walk t's dims in chunks that are contiguous among themselves and split each chunk.
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  const Shape& os = t.sizes();
  const Shape& ost = t.strides();
  out.assign(shape.size(), 1);
  if (t.numel() == 0 || os.empty()) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = ost.empty() ? 1 : ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = static_cast<int64_t>(os.size()) - 1; td >= 0; --td) {
    tensor_numel *= os[td];
    if (td == 0 || (os[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) {
        chunk_base_stride = ost[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor view(const Tensor& t, Shape shape) {
  shape = infer_shape(t, std::move(shape), "view");
  Shape strides;
  MP_CHECK(view_strides(t, shape, strides), "view: cannot view shape ", shape_str(t.sizes()),
           " with strides ", shape_str(t.strides()), " as ", shape_str(shape),
           " without a copy; use reshape");
  return restride(t, shape, strides, t.storage_offset());
}

Tensor reshape(const Tensor& t, Shape shape) {
  shape = infer_shape(t, std::move(shape), "reshape");
  Shape strides;
  if (view_strides(t, shape, strides)) return restride(t, shape, strides, t.storage_offset());
  Tensor c = contiguous(t);
  return restride(c, shape, contiguous_strides(shape), c.storage_offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  d0 = wrap_dim(d0, t.dim(), "transpose");
  d1 = wrap_dim(d1, t.dim(), "transpose");
  if (t.dim() == 0) return t.detach();
  Shape s = t.sizes(), st = t.strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return restride(t, s, st, t.storage_offset());
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  MP_CHECK(static_cast<int64_t>(dims.size()) == t.dim(), "permute: got ", dims.size(),
           " dims for a ", t.dim(), "-D tensor");
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], t.dim(), "permute");
    MP_CHECK(!seen[d], "permute: dim ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    s[i] = t.size(d);
    st[i] = t.stride(d);
  }
  return restride(t, s, st, t.storage_offset());
}

std::pair<int64_t, int64_t> normalize_slice(int64_t n, int64_t start, int64_t end) {
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  return {start, end};
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  MP_CHECK(t.dim() > 0, "slice: cannot slice a 0-dim tensor");
  dim = wrap_dim(dim, t.dim(), "slice");
  MP_CHECK(step > 0, "slice: step must be positive, got ", step);
  std::tie(start, end) = normalize_slice(t.size(dim), start, end);
  Shape s = t.sizes(), st = t.strides();
  s[dim] = (end - start + step - 1) / step;
  st[dim] *= step;
  return restride(t, s, st, t.storage_offset() + start * t.stride(dim));
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  MP_CHECK(t.dim() > 0, "narrow: cannot narrow a 0-dim tensor");
  dim = wrap_dim(dim, t.dim(), "narrow");
  const int64_t n = t.size(dim);
  MP_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ",
           start + length, ") out of bounds for dim ", dim, " of size ", n, " (shape ",
           shape_str(t.sizes()), ")");
  return slice(t, dim, start, start + length, 1);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  MP_CHECK(t.dim() > 0, "select: cannot index a 0-dim tensor");
  dim = wrap_dim(dim, t.dim(), "select");
  const int64_t n = t.size(dim);
  MP_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", dim,
           " of size ", n);
  if (index < 0) index += n;
  Shape s = t.sizes(), st = t.strides();
  int64_t offset = t.storage_offset() + index * st[dim];
  s.erase(s.begin() + dim);
  st.erase(st.begin() + dim);
  return restride(t, s, st, offset);
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape s = t.sizes(), st = t.strides();
  int64_t new_stride = dim < t.dim() ? st[dim] * s[dim] : 1;
  s.insert(s.begin() + dim, 1);
  st.insert(st.begin() + dim, new_stride);
  return restride(t, s, st, t.storage_offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  if (t.dim() == 0) return t.detach();
  dim = wrap_dim(dim, t.dim(), "squeeze");
  if (t.size(dim) != 1) return t.detach();
  Shape s = t.sizes(), st = t.strides();
  s.erase(s.begin() + dim);
  st.erase(st.begin() + dim);
  return restride(t, s, st, t.storage_offset());
}

Tensor squeeze(const Tensor& t) {
  Shape s, st;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (t.size(i) != 1) {
      s.push_back(t.size(i));
      st.push_back(t.stride(i));
    }
  return restride(t, s, st, t.storage_offset());
}

Tensor expand(const Tensor& t, const Shape& shape) {
  MP_CHECK(static_cast<int64_t>(shape.size()) >= t.dim(), "expand: cannot expand shape ",
           shape_str(t.sizes()), " to ", shape_str(shape), " (fewer dims)");
  const int64_t lead = static_cast<int64_t>(shape.size()) - t.dim();
  Shape s(shape.size()), st(shape.size());
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < lead) {
      MP_CHECK(shape[i] >= 0, "expand: invalid size ", shape[i], " in ", shape_str(shape));
      s[i] = shape[i];
      st[i] = 0;
      continue;
    }
    MP_CHECK(shape[i] >= -1, "expand: invalid size ", shape[i], " in ", shape_str(shape));
    const int64_t have = t.size(i - lead), want = shape[i] == -1 ? have : shape[i];
    MP_CHECK(have == want || have == 1, "expand: cannot expand shape ", shape_str(t.sizes()),
             " to ", shape_str(shape), ": dim ", i, " has size ", have, ", not 1 or ", want);
    s[i] = want;
    st[i] = have == want ? t.stride(i - lead) : 0;
  }
  return restride(t, s, st, t.storage_offset());
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  if (t.dim() == 0) return reshape(t, {1});
  start_dim = wrap_dim(start_dim, t.dim(), "flatten");
  end_dim = wrap_dim(end_dim, t.dim(), "flatten");
  MP_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " > end_dim ", end_dim);
  Shape s;
  for (int64_t i = 0; i < start_dim; ++i) s.push_back(t.size(i));
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= t.size(i);
  s.push_back(m);
  for (int64_t i = end_dim + 1; i < t.dim(); ++i) s.push_back(t.size(i));
  return reshape(t, s);
}

}  // namespace minipipe::ops
