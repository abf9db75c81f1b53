// Copies between layouts and dtypes: contiguous, clone, copy_ (with broadcasting and dtype
// conversion), to(dtype), fill_.
#include "tensor/cpu/loops.h"
#include "tensor/ops.h"

namespace minipipe::ops {

namespace {

template <typename To, typename From>
void copy_typed(const Tensor& dst, const Tensor& src) {
  To* o = dst.data_ptr<To>();
  const From* x = src.data_ptr<From>();
  cpu::strided_loop<2>(dst.sizes(), {dst.strides(), cpu::broadcast_strides(src, dst.sizes())},
                       [=](std::array<int64_t, 2> off, int64_t n, std::array<int64_t, 2> st) {
                         To* po = o + off[0];
                         const From* px = x + off[1];
                         if (st[0] == 1 && st[1] == 1) {
                           for (int64_t i = 0; i < n; ++i) po[i] = static_cast<To>(px[i]);
                         } else {
                           for (int64_t i = 0; i < n; ++i) po[i * st[0]] = static_cast<To>(px[i * st[1]]);
                         }
                       });
}

}  // namespace

void copy_(const Tensor& dst, const Tensor& src) {
  cpu::check_cpu("copy_", {&dst, &src});
  cpu::check_writable("copy_", dst);
  MP_CHECK(broadcast_shapes(dst.sizes(), src.sizes(), "copy_") == dst.sizes(), "copy_: cannot copy shape ",
           shape_str(src.sizes()), " into ", shape_str(dst.sizes()));
  MP_DISPATCH_ALL(dst.dtype(), "copy_", [&] {
    using To = scalar_t;
    MP_DISPATCH_ALL(src.dtype(), "copy_", [&] { copy_typed<To, scalar_t>(dst, src); });
  });
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.sizes(), t.options());
  copy_(out, t);
  return out;
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.sizes(), t.options());
  copy_(out, t);
  return out;
}

Tensor to(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.sizes(), {dtype, t.device()});
  copy_(out, t);
  return out;
}

void fill_(const Tensor& t, double value) {
  cpu::check_cpu("fill_", {&t});
  cpu::check_writable("fill_", t);
  MP_DISPATCH_ALL(t.dtype(), "fill_", [&] {
    const auto v = static_cast<scalar_t>(value);
    scalar_t* o = t.data_ptr<scalar_t>();
    cpu::strided_loop<1>(t.sizes(), {t.strides()},
                         [=](std::array<int64_t, 1> off, int64_t n, std::array<int64_t, 1> st) {
                           for (int64_t i = 0; i < n; ++i) o[off[0] + i * st[0]] = v;
                         });
  });
}

}  // namespace minipipe::ops
